-- Runs as the bootstrap superuser just before a whitelisted extension's script (a pgextwlist
-- custom script; cluster.sh installs one copy per extension and action, with @extname@ and
-- @action@ filled in). It refuses what would let the app steer that script:
--   * a search_path the script could paste into dynamic SQL. PostGIS's tiger geocoder and
--     topology scripts read the session's *initial* search_path (pg_settings.reset_val, set by
--     the connection's startup options) and the database's stored one (ALTER DATABASE ... SET
--     search_path FROM CURRENT stores it raw) and EXECUTE them unquoted. Only plain lists of
--     identifiers pass.
--   * for extensions PostgreSQL does not mark `trusted` (PostGIS, pgRouting, the FDWs, ...),
--     functions or operators of the app's own in the schemas the script resolves names in (the
--     target schema and those of the extensions it requires): an overload with a
--     better-matching signature would run as superuser.
-- Everything below is schema-qualified: while it runs, search_path is the (app-owned) target
-- schema. The search_path value is the only thing this reads that the app controls, and it is
-- compared, never executed.
DO $fleet_guard$
DECLARE
    extension constant text := '@extname@';
    action constant text := '@action@';
    safe_list constant text :=
        '^ *(([$]user|[A-Za-z_][A-Za-z0-9_]*|"[$]?[A-Za-z_][A-Za-z0-9_]*")'
        ' *(, *([$]user|[A-Za-z_][A-Za-z0-9_]*|"[$]?[A-Za-z_][A-Za-z0-9_]*") *)*)?$';
    this_db pg_catalog.oid;
    owner pg_catalog.oid;
    offending text;
BEGIN
    -- CREATE EXTENSION IF NOT EXISTS of an installed extension runs no script.
    IF action OPERATOR(pg_catalog.=) 'create' AND EXISTS (
        SELECT FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) extension
    ) THEN
        RETURN;
    END IF;

    SELECT d.oid, d.datdba INTO this_db, owner
      FROM pg_catalog.pg_database d
     WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database();

    SELECT pg_catalog.string_agg(v.source, '; ') INTO offending
      FROM (
        SELECT 'the search_path the session started with' AS source, s.reset_val AS value
          FROM pg_catalog.pg_settings s
         WHERE s.name OPERATOR(pg_catalog.=) 'search_path'
        UNION ALL
        SELECT 'the search_path stored with ALTER DATABASE/ROLE ... SET',
               pg_catalog.substr(c.setting, 13)
          FROM pg_catalog.pg_db_role_setting r,
               pg_catalog.unnest(r.setconfig) AS c(setting)
         WHERE pg_catalog.starts_with(c.setting, 'search_path=')
           AND (r.setdatabase OPERATOR(pg_catalog.=) this_db
                OR (r.setdatabase OPERATOR(pg_catalog.=) 0::pg_catalog.oid
                    AND r.setrole OPERATOR(pg_catalog.=) ANY (ARRAY[
                        owner,
                        (SELECT a.oid FROM pg_catalog.pg_roles a
                          WHERE a.rolname OPERATOR(pg_catalog.=) pg_catalog.session_user())])))
      ) AS v
     WHERE NOT (v.value OPERATOR(pg_catalog.~) safe_list);
    IF offending IS NOT NULL THEN
        RAISE EXCEPTION 'extension "%" refused: % is not a plain list of schema names', extension, offending
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Use a search_path of plain identifiers (e.g. "$user", public) when creating or updating extensions.';
    END IF;

    IF EXISTS (
        SELECT FROM pg_catalog.pg_available_extension_versions v
         WHERE v.name OPERATOR(pg_catalog.=) extension AND NOT v.trusted
    ) THEN
        SELECT pg_catalog.string_agg(DISTINCT o.what, ', ') INTO offending
          FROM (
            SELECT pg_catalog.format('function %I.%I', n.nspname, p.proname) AS what,
                   n.nspname, p.pronamespace AS nsp, p.proowner AS owner
              FROM pg_catalog.pg_proc p
              JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
            UNION ALL
            SELECT pg_catalog.format('operator %I.%s', n.nspname, op.oprname),
                   n.nspname, op.oprnamespace, op.oprowner
              FROM pg_catalog.pg_operator op
              JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) op.oprnamespace
          ) AS o
          JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) o.owner
         WHERE NOT r.rolsuper
           AND (o.nspname OPERATOR(pg_catalog.=) ANY (pg_catalog.current_schemas(false))
                OR o.nsp OPERATOR(pg_catalog.=) ANY (ARRAY(
                    SELECT e.extnamespace FROM pg_catalog.pg_extension e
                     WHERE e.extname OPERATOR(pg_catalog.=) ANY (ARRAY(
                        SELECT pg_catalog.unnest(v.requires)
                          FROM pg_catalog.pg_available_extension_versions v
                         WHERE v.name OPERATOR(pg_catalog.=) extension)))));
        IF offending IS NOT NULL THEN
            RAISE EXCEPTION 'extension "%" refused: its script would run as superuser beside code of the app''s own (%)', extension, offending
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'Create this extension before creating functions or operators in its schema, through the addon''s extensions option, or into a schema of its own (CREATE EXTENSION ... SCHEMA).';
        END IF;
    END IF;
END
$fleet_guard$;
