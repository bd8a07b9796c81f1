//! `deploy/init-secrets.sh`: every secret file it leaves is 0600 (nothing for group or others),
//! owned by the uid that reads it in its container, and a re-run repairs a file an older
//! version left world-readable without changing its content. The coordinator's pgpass file
//! carries its database password, and the mongo image's copy an older version made is gone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    fs,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::Path,
    process::Command,
};

/// The services' `fleet` user in deploy/Dockerfile.
const FLEET_UID: u32 = 10001;
/// The random secrets docker-compose.yml mounts (64 hex digits each).
const SECRETS: [&str; 8] = [
    "master.key",
    "token",
    "postgres-password",
    "mariadb-password",
    "mongo-password",
    "ldap-password",
    "mail-postmaster-password",
    "coordinator-db-password",
];
/// The coordinator's password as a pgpass line, which it mounts too.
const PGPASS: &str = "coordinator-db.pgpass";

/// Every file it mounts.
fn files() -> impl Iterator<Item = &'static str> {
    SECRETS.into_iter().chain([PGPASS])
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn init_secrets(dir: &Path) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/init-secrets.sh");
    let output = Command::new("bash")
        .arg(script)
        .arg(dir)
        .output()
        .expect("bash");
    assert!(
        output.status.success(),
        "init-secrets.sh failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The script chowns to the containers' uids, which only root may do (it uses sudo
/// otherwise, which a test cannot answer). `make test` runs as root.
fn skip_unless_root() -> bool {
    if is_root() {
        return false;
    }
    eprintln!("skipped: init-secrets.sh gives files to other uids, which needs root");
    true
}

#[test]
fn every_secret_file_is_0600_and_owned_by_its_reader() {
    if skip_unless_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("secrets");
    init_secrets(&dir);

    let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        assert_eq!(
            mode & 0o077,
            0,
            "{} has group/other bits: {mode:o}",
            path.display()
        );
        assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
    }
    for name in files() {
        let path = dir.join(name);
        let meta = fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(meta.uid(), FLEET_UID, "owner of {name}");
    }
    for name in SECRETS {
        let secret = fs::read_to_string(dir.join(name)).unwrap();
        assert!(
            secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name} is not 64 hex digits"
        );
    }
    let password = fs::read_to_string(dir.join("coordinator-db-password")).unwrap();
    assert_eq!(
        fs::read_to_string(dir.join(PGPASS)).unwrap(),
        format!("*:*:*:postgres:{password}\n"),
        "the coordinator's pgpass line does not carry its database password"
    );
}

#[test]
fn a_rerun_repairs_modes_and_keeps_every_secret() {
    if skip_unless_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("secrets");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    // What an older version left: a world-readable master key.
    let old_key = "an existing master key that must not change 0123456789";
    fs::write(dir.join("master.key"), old_key).unwrap();
    fs::set_permissions(dir.join("master.key"), fs::Permissions::from_mode(0o644)).unwrap();
    // And the mongo image's copy of its password, which nothing mounts any more.
    fs::write(dir.join("mongod-root-password"), "an old copy").unwrap();

    init_secrets(&dir);
    let first: Vec<Vec<u8>> = files().map(|f| fs::read(dir.join(f)).unwrap()).collect();
    init_secrets(&dir);
    let second: Vec<Vec<u8>> = files().map(|f| fs::read(dir.join(f)).unwrap()).collect();

    assert_eq!(fs::read_to_string(dir.join("master.key")).unwrap(), old_key);
    assert_eq!(first, second, "a re-run changed a secret");
    assert!(
        !dir.join("mongod-root-password").exists(),
        "the old mongo copy of a password is left behind"
    );
    for name in files() {
        let mode = fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600, "{name} is {mode:o}");
    }
    let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700, "the directory is {mode:o}");
}
