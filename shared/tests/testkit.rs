//! The test kit's backends start as `make up` configures them and stop with the test process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use fleet_shared::testkit::LdapServer;

#[test]
fn slapd_starts_with_the_directory_tree_and_admin() {
    let mut server = LdapServer::start().unwrap();
    let search = Command::new("ldapsearch")
        .args([
            "-LLL",
            "-x",
            "-H",
            &server.url(),
            "-D",
            LdapServer::ADMIN_DN,
            "-w",
        ])
        .arg(server.admin_password())
        .args(["-b", "dc=cloudron", "dn"])
        .output()
        .expect("ldap-utils (deploy/install-deps.sh installs them)");
    let found = String::from_utf8_lossy(&search.stdout);
    for dn in [
        "dn: ou=users,dc=cloudron",
        "dn: ou=groups,dc=cloudron",
        "dn: ou=apps,dc=cloudron",
    ] {
        assert!(found.contains(dn), "{dn} missing: {found}");
    }
    // Anonymous clients see nothing.
    let anonymous = Command::new("ldapsearch")
        .args(["-LLL", "-x", "-H", &server.url(), "-b", "dc=cloudron", "dn"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&anonymous.stdout).trim().is_empty());
    let url = server.url();
    server.stop().unwrap();
    let after = Command::new("ldapsearch")
        .args(["-x", "-H", &url, "-b", "dc=cloudron"])
        .output()
        .unwrap();
    assert!(!after.status.success(), "slapd still answers after stop");
}
