//! The public contract in `proto/`: it lints clean under buf's STANDARD rules, and it carries
//! typed options for every addon of the reference, with the manifest's option names.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use fleet_shared::proto::FILE_DESCRIPTOR_SET;
use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorSet};

fn message(name: &str) -> DescriptorProto {
    let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
    set.file
        .iter()
        .filter(|f| f.package() == "fleet.addon.v1")
        .flat_map(|f| f.message_type.iter())
        .find(|m| m.name() == name)
        .cloned()
        .unwrap_or_else(|| panic!("no message {name}"))
}

fn field_names(message: &DescriptorProto) -> Vec<&str> {
    message.field.iter().map(|f| f.name()).collect()
}

#[test]
fn protos_pass_buf_lint() {
    let proto_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto");
    let output = Command::new("buf")
        .arg("lint")
        .current_dir(proto_dir)
        .output()
        .expect("buf is installed by deploy/install-deps.sh");
    assert!(
        output.status.success(),
        "buf lint:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn provision_takes_typed_options_of_every_addon_in_the_reference() {
    let request = message("ProvisionRequest");
    let options: Vec<&str> = request
        .field
        .iter()
        .filter(|f| f.oneof_index.is_some())
        .map(|f| f.name())
        .collect();
    assert_eq!(
        options,
        [
            "mysql",
            "postgresql",
            "mongodb",
            "redis",
            "ldap",
            "oidc",
            "sendmail",
            "recvmail",
            "email",
            "turn",
            "docker",
            "proxy_auth"
        ]
    );
}

#[test]
fn option_messages_mirror_the_manifest_options() {
    let expected: [(&str, &[&str]); 12] = [
        ("MysqlOptions", &["multiple_databases"]),
        ("PostgresqlOptions", &["locale", "extensions"]),
        ("MongodbOptions", &["oplog"]),
        ("RedisOptions", &["no_password"]),
        ("LdapOptions", &[]),
        (
            "OidcOptions",
            &[
                "login_redirect_uris",
                "logout_redirect_uri",
                "token_signature_algorithm",
            ],
        ),
        (
            "SendmailOptions",
            &[
                "optional",
                "supports_display_name",
                "requires_valid_certificate",
                "mailbox_name",
                "mailbox_domain",
                "display_name",
            ],
        ),
        ("RecvmailOptions", &["mailbox_name", "mailbox_domain"]),
        ("EmailOptions", &[]),
        ("TurnOptions", &[]),
        ("DockerOptions", &[]),
        (
            "ProxyAuthOptions",
            &["path", "basic_auth", "supports_bearer_auth"],
        ),
    ];
    for (name, fields) in expected {
        assert_eq!(field_names(&message(name)), fields, "{name}");
    }
}
