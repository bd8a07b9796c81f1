-- The turn service's own table in coturn's database (DIR/db/turndb), applied by
-- deploy/turn/cluster.sh at every init and run (idempotent). coturn never reads it.
--   name     the app's resource name (app_<readable>_<hash>, from its app id): at most one
--            secret per app
--   app_id   the app that owns the row (a name another app holds is never taken over)
--   secret   the app's one row of turn_secret(realm, value): deleting both in one
--            transaction revokes the app's credentials for new allocations
CREATE TABLE IF NOT EXISTS fleet_turn_apps (
    name   TEXT PRIMARY KEY NOT NULL,
    app_id TEXT NOT NULL,
    secret TEXT NOT NULL
);
