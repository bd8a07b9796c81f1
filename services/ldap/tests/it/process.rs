//! slapd as `make up` and the test kit run it (`deploy/ldap/cluster.sh`): never as root, and
//! its directory (data, slapd.conf with the rootpw hash, the password file) closed to others.

use fleet_shared::testkit::host;

use crate::support::*;

#[test]
fn slapd_runs_unprivileged_and_its_files_are_private() {
    let server = slapd();
    let dir = server.dir();
    for file in ["data", "slapd.conf", "superuser-password"] {
        assert!(
            dir.join(file).exists(),
            "{file} missing in {}",
            dir.display()
        );
    }
    let exposed = host::exposure(server.port(), dir, Some("openldap"));
    assert!(exposed.is_empty(), "{exposed:?}");
    if !host::running_as_root() {
        eprintln!("not root: slapd runs as this user; only the permissions were checked");
    }
}
