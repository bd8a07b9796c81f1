-- The mail accounts of deploy/mail/cluster.sh: DIR/accounts/accounts.db, read directly by
-- Dovecot (passdb and userdb sql: logins, and which addresses have a mailbox) and by Postfix
-- (virtual_mailbox_maps: which recipients exist), written by the mail service (root) in
-- transactions that take effect at the very next login or RCPT (nothing caches it).
-- Applied by `cluster.sh init` and again at every `cluster.sh run` (idempotent).
--
--   address   the full login, in lower case (`app@example.test`)
--   addon     which services may use the password:
--               sendmail    SMTP submission only (the address has no mailbox)
--               recvmail    IMAP, POP3 and ManageSieve only, and the address is a deliverable
--                           mailbox (Postfix accepts it at RCPT, LMTP delivers into it)
--               postmaster  everything (postmaster@<primary domain>, made at init)
--             An address has one row per addon, each with its own password.
--   app_id    the app the row belongs to; NULL for the postmaster
--   password  a Dovecot `{SCHEME}hash` as `doveadm pw` makes it (`{SHA512-CRYPT}$6$...`), never
--             a clear password
--
-- The readers (Postfix's processes as user postfix, Dovecot's auth-worker as user dovecot) are
-- unprivileged and get read access only (the file is postfix:dovecot 0440 in a root-owned
-- directory): the journal mode must stay DELETE, since WAL would need them to write the -shm
-- file. (sqlx, for one, opens SQLite databases in WAL mode unless told otherwise.)
PRAGMA journal_mode = DELETE;

CREATE TABLE IF NOT EXISTS accounts (
    address  TEXT NOT NULL CHECK (address = lower(address) AND address LIKE '_%@_%'),
    addon    TEXT NOT NULL CHECK (addon IN ('sendmail', 'recvmail', 'postmaster')),
    app_id   TEXT,
    password TEXT NOT NULL CHECK (password LIKE '{%}%'),
    PRIMARY KEY (address, addon)
);
CREATE INDEX IF NOT EXISTS accounts_by_app ON accounts (app_id);
