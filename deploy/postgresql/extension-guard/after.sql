-- Runs as the bootstrap superuser right after a whitelisted extension's script, in the same
-- transaction (a pgextwlist custom script; cluster.sh installs one copy per extension and
-- action). A second line of defence behind before.sql: whatever the script did, the app (the
-- owner of this database) must come out of it with no more than it had, or the whole
-- statement is rolled back. Checked: role attributes, role memberships, ownership or grants
-- outside its database, superuser-only settings stored for it or for its database, and
-- SECURITY DEFINER code of a superuser's that is not C (a door an app could call later).
DO $fleet_check$
DECLARE
    extension constant text := '@extname@';
    this_db pg_catalog.oid;
    owner pg_catalog.oid;
    offending text;
BEGIN
    SELECT d.oid, d.datdba INTO this_db, owner
      FROM pg_catalog.pg_database d
     WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database();

    SELECT pg_catalog.string_agg(f.finding, '; ') INTO offending
      FROM (
        SELECT 'the app''s role has a privileged attribute' AS finding
          FROM pg_catalog.pg_roles r
         WHERE r.oid OPERATOR(pg_catalog.=) owner
           AND (r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication
                OR r.rolbypassrls)
        UNION ALL
        SELECT pg_catalog.format('the app''s role is a member of %I', g.rolname)
          FROM pg_catalog.pg_auth_members m
          JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) m.roleid
         WHERE m.member OPERATOR(pg_catalog.=) owner
        UNION ALL
        SELECT 'the app''s role owns or was granted something outside its database'
          FROM pg_catalog.pg_shdepend s
         WHERE s.refobjid OPERATOR(pg_catalog.=) owner
           AND s.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['o', 'a']::pg_catalog.char[])
           AND s.dbid OPERATOR(pg_catalog.<>) this_db
           AND NOT (s.dbid OPERATOR(pg_catalog.=) 0::pg_catalog.oid
                    AND s.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_database'::pg_catalog.regclass
                    AND s.objid OPERATOR(pg_catalog.=) this_db)
        UNION ALL
        SELECT pg_catalog.format('a superuser-only setting %I is stored for the app', c.name)
          FROM pg_catalog.pg_db_role_setting r,
               pg_catalog.unnest(r.setconfig) AS kv(setting),
               LATERAL (SELECT pg_catalog.split_part(kv.setting, '=', 1) AS name) AS c
          JOIN pg_catalog.pg_settings s ON s.name OPERATOR(pg_catalog.=) c.name
         WHERE (r.setdatabase OPERATOR(pg_catalog.=) this_db
                OR r.setrole OPERATOR(pg_catalog.=) owner)
           AND s.context OPERATOR(pg_catalog.<>) 'user'
        UNION ALL
        SELECT pg_catalog.format('function %s runs as superuser for its callers', p.oid::pg_catalog.regprocedure)
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) p.proowner
          JOIN pg_catalog.pg_language l ON l.oid OPERATOR(pg_catalog.=) p.prolang
         WHERE p.prosecdef AND r.rolsuper AND l.lanname OPERATOR(pg_catalog.<>) 'c'
      ) AS f;
    IF offending IS NOT NULL THEN
        RAISE EXCEPTION 'extension "%" refused: its script left %', extension, offending
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$fleet_check$;
