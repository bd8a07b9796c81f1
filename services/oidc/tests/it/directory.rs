//! The user directory against a real slapd: users and groups are made through the ldap
//! service's Directory API (served in-process, as in production), the provider binds with an
//! app's bind account from the ldap addon, and logins, claims, hostile names and slapd going
//! away are checked through [`UserDirectory`].

use std::sync::Arc;

use fleet_oidc::directory::{DirectorySettings, UserDirectory};
use fleet_shared::{
    Secret,
    error::AddonError,
    proto::directory::{DeleteUserRequest, UpdateUserRequest},
    testkit::LdapServer,
};

use crate::support::{PASSWORD, Users, slapd, unique};

/// An address where nothing listens.
fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("ldap://127.0.0.1:{port}")
}

/// `text` with its ASCII letters and digits in their fullwidth forms, which LDAP's matching
/// rules take for the same characters.
fn fullwidth(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' => char::from_u32(c as u32 + 0xFEE0).unwrap(),
            other => other,
        })
        .collect()
}

fn expect_unavailable<T: std::fmt::Debug>(outcome: Result<T, AddonError>, secrets: &[&str]) {
    match outcome {
        Err(AddonError::Unavailable(message)) => {
            assert!(message.contains("the directory (slapd)"), "{message}");
            for secret in secrets {
                assert!(!message.contains(secret), "{message}");
            }
        }
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn users_log_in_by_username_or_email_in_any_case() {
    let mut fixture = Users::start(slapd()).await;
    let directory = fixture.user_directory();
    assert!(directory.ping().await);
    let name = unique("Ada");
    let created = fixture.create_user(&name, Some(PASSWORD)).await;

    for login in [
        name.clone(),
        name.to_uppercase(),
        name.to_lowercase(),
        created.email.clone(),
        created.email.to_uppercase(),
    ] {
        let user = directory.authenticate(&login, PASSWORD).await.unwrap();
        let user = user.unwrap_or_else(|| panic!("{login} did not log in"));
        assert_eq!(user.username, name);
        assert_eq!(user.email, created.email);
    }
    // Wrong password and unknown user alike: None.
    let wrong = directory.authenticate(&name, "not the password").await;
    assert_eq!(wrong.unwrap(), None);
    let case = directory
        .authenticate(&name, &PASSWORD.to_uppercase())
        .await;
    assert_eq!(case.unwrap(), None);
    let ghost = directory.authenticate(&unique("ghost"), PASSWORD).await;
    assert_eq!(ghost.unwrap(), None);
    // An empty password would be an unauthenticated bind, which slapd lets succeed.
    assert_eq!(directory.authenticate(&name, "").await.unwrap(), None);
    assert_eq!(directory.authenticate("", "").await.unwrap(), None);
    assert_eq!(directory.authenticate("", PASSWORD).await.unwrap(), None);
    // A user without a password cannot log in at all.
    let no_password = unique("nopw");
    fixture.create_user(&no_password, None).await;
    for password in ["", PASSWORD] {
        let outcome = directory.authenticate(&no_password, password).await;
        assert_eq!(outcome.unwrap(), None);
    }
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_logins_find_nobody() {
    let mut fixture = Users::start(slapd()).await;
    let directory = fixture.user_directory();
    let name = unique("victim");
    let created = fixture.create_user(&name, Some(PASSWORD)).await;
    let prefix = &name[..name.len() - 2];
    let long = "a".repeat(100_000);
    for login in [
        "*",
        "a)(|(username=*",
        "*)(mail=*",
        &format!("{name})(|(username=*"),
        &format!("{prefix}*"),
        &format!("*{}", &created.email[1..]),
        "(",
        ")",
        "\\",
        "\\2a",
        "x\0y",
        &format!("{name}\0"),
        "ünïcødé@example.com",
        // LDAP matching ignores these differences; the login must be the stored name.
        &format!(" {name}"),
        &format!("{name} "),
        &fullwidth(&name),
        long.as_str(),
        &format!("cn={name},ou=users,dc=cloudron"),
    ] {
        let outcome = directory.authenticate(login, PASSWORD).await;
        let shown: String = login.chars().take(40).collect();
        assert_eq!(outcome.unwrap(), None, "{shown:?}");
    }
    let (spaced, wide, wildcard) = (format!(" {name} "), fullwidth(&name), format!("{prefix}*"));
    for username in [
        "*",
        "",
        "a)(|(username=*",
        &wildcard,
        "x\0y",
        &spaced,
        &wide,
    ] {
        assert_eq!(
            directory.user(username).await.unwrap(),
            None,
            "{username:?}"
        );
    }
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn claims_and_groups_are_the_directorys() {
    let mut fixture = Users::start(slapd()).await;
    let directory = fixture.user_directory();
    let name = unique("grace");
    fixture.create_user(&name, Some(PASSWORD)).await;
    let alone = directory.user(&name).await.unwrap().unwrap();
    assert!(alone.groups.is_empty(), "{alone:?}");
    let groups = [
        unique("zeta"),
        unique("Alpha"),
        unique("beta"),
        unique(r#"#Ünï, team+x="y";<z>\"#),
    ];
    for group in &groups {
        fixture.create_group(group).await;
        fixture.add_member(group, &name).await;
    }
    fixture.create_group(&unique("not-a-member")).await;
    let mut sorted = groups.to_vec();
    sorted.sort_by_key(|group| group.to_lowercase());

    let listed = fixture.listed(&name).await;
    let user = directory.user(&name).await.unwrap().unwrap();
    assert_eq!(user.username, name);
    assert_eq!(user.email, listed.email);
    assert_eq!(user.display_name, "Ada Lovelace");
    assert_eq!(user.given_name, "Ada");
    assert_eq!(user.family_name, "Lovelace");
    assert_eq!(user.locale, "en-US");
    assert_eq!(user.groups, sorted);
    assert_eq!(user.groups, listed.groups);
    // Any case of the username names the user; the one logged in has the same claims.
    let upper = directory.user(&name.to_uppercase()).await.unwrap();
    assert_eq!(upper.as_ref(), Some(&user));
    let logged_in = directory.authenticate(&name, PASSWORD).await.unwrap();
    assert_eq!(logged_in.as_ref(), Some(&user));

    // Changes show at once.
    let update = UpdateUserRequest {
        username: name.clone(),
        display_name: Some("Grace Hopper".to_owned()),
        given_name: Some(String::new()),
        ..Default::default()
    };
    fixture.directory().update_user(update).await.unwrap();
    let changed = directory.user(&name).await.unwrap().unwrap();
    assert_eq!(changed.display_name, "Grace Hopper");
    assert_eq!(changed.given_name, "");
    assert_eq!(changed.groups, sorted);

    // A deleted user is gone, for lookups and logins.
    let delete = DeleteUserRequest {
        username: name.clone(),
    };
    fixture.directory().delete_user(delete).await.unwrap();
    assert_eq!(directory.user(&name).await.unwrap(), None);
    assert_eq!(directory.authenticate(&name, PASSWORD).await.unwrap(), None);
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_logins_share_the_service_connection_and_stay_apart() {
    let mut fixture = Users::start(slapd()).await;
    let directory = Arc::new(fixture.user_directory());
    let names = [unique("one"), unique("two"), unique("three")];
    for name in &names {
        fixture.create_user(name, Some(PASSWORD)).await;
    }
    let mut logins = tokio::task::JoinSet::new();
    for round in 0..8 {
        for name in &names {
            let (directory, name) = (Arc::clone(&directory), name.clone());
            let password = if round % 2 == 0 { PASSWORD } else { "wrong" };
            logins.spawn(async move {
                let user = directory.authenticate(&name, password).await.unwrap();
                let looked_up = directory.user(&name).await.unwrap();
                (name, password, user, looked_up)
            });
        }
    }
    while let Some(joined) = logins.join_next().await {
        let (name, password, user, looked_up) = joined.unwrap();
        let looked_up = looked_up.unwrap();
        assert_eq!(looked_up.username, name);
        match password {
            PASSWORD => assert_eq!(user, Some(looked_up), "{name}"),
            _ => assert_eq!(user, None, "{name}"),
        }
    }
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_directory_is_unavailable_without_secrets() {
    let fixture = Users::start(slapd()).await;
    let password = fixture.settings.bind_password.expose().clone();
    let closed = UserDirectory::new(DirectorySettings {
        url: closed_url(),
        ..fixture.settings.clone()
    });
    let secrets = [password.as_str(), PASSWORD];
    expect_unavailable(closed.authenticate("someone", PASSWORD).await, &secrets);
    expect_unavailable(closed.user("someone").await, &secrets);
    assert!(!closed.ping().await);
    // An empty password is None before anything is asked.
    assert_eq!(closed.authenticate("someone", "").await.unwrap(), None);

    // Credentials slapd refuses: unavailable too, saying which settings to check.
    let refused = UserDirectory::new(DirectorySettings {
        bind_password: Secret::new("not the bind password".to_owned()),
        ..fixture.settings.clone()
    });
    let outcome = refused.authenticate("someone", PASSWORD).await;
    expect_unavailable(outcome, &["not the bind password", PASSWORD]);
    assert!(!refused.ping().await);
    // No account at all would be an anonymous bind, which sees nobody: refused up front.
    let anonymous = UserDirectory::new(DirectorySettings {
        bind_dn: String::new(),
        bind_password: Secret::new(String::new()),
        ..fixture.settings.clone()
    });
    expect_unavailable(anonymous.user("someone").await, &[]);
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slapd_going_away_is_unavailable_then_ping_is_false() {
    let mut own = tokio::task::spawn_blocking(LdapServer::start)
        .await
        .unwrap()
        .unwrap();
    let mut fixture = Users::start(&own).await;
    let directory = fixture.user_directory();
    let name = unique("ephemeral");
    fixture.create_user(&name, Some(PASSWORD)).await;
    assert!(directory.ping().await);
    assert!(
        directory
            .authenticate(&name, PASSWORD)
            .await
            .unwrap()
            .is_some()
    );

    own.stop().unwrap();
    let secrets = [fixture.settings.bind_password.expose().as_str(), PASSWORD];
    expect_unavailable(directory.authenticate(&name, PASSWORD).await, &secrets);
    expect_unavailable(directory.user(&name).await, &secrets);
    assert!(!directory.ping().await);
    fixture.stop().await;
}
