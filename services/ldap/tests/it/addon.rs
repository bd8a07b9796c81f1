//! The app's view: the bundle logs users in the reference's way, and the bind account reads
//! users and groups but nothing else.

use std::collections::HashSet;

use ldap3::{Mod, exop::PasswordModify};
use tonic::Code;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn users_log_in_by_username_and_by_email() {
    let service = start_service().await;
    let mut addon = service.client().await;
    let mut directory = directory(&service).await;
    let app = app_id("login");
    let env = provision(&mut addon, request(&app)).await.unwrap();
    let mut keys: Vec<&str> = env.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "CLOUDRON_LDAP_BIND_DN",
            "CLOUDRON_LDAP_BIND_PASSWORD",
            "CLOUDRON_LDAP_GROUPS_BASE_DN",
            "CLOUDRON_LDAP_HOST",
            "CLOUDRON_LDAP_PORT",
            "CLOUDRON_LDAP_SERVER",
            "CLOUDRON_LDAP_URL",
            "CLOUDRON_LDAP_USERS_BASE_DN",
        ]
    );
    assert_eq!(env["CLOUDRON_LDAP_USERS_BASE_DN"], "ou=users,dc=cloudron");
    assert_eq!(env["CLOUDRON_LDAP_GROUPS_BASE_DN"], "ou=groups,dc=cloudron");
    assert_eq!(
        env["CLOUDRON_LDAP_BIND_DN"],
        format!("cn={},ou=apps,dc=cloudron", resource_name(&app))
    );
    assert_eq!(env["CLOUDRON_LDAP_URL"], slapd().url());
    assert_eq!(
        format!(
            "ldap://{}:{}",
            env["CLOUDRON_LDAP_SERVER"], env["CLOUDRON_LDAP_PORT"]
        ),
        env["CLOUDRON_LDAP_URL"]
    );
    assert_eq!(env["CLOUDRON_LDAP_HOST"], env["CLOUDRON_LDAP_SERVER"]);

    let name = username("ada");
    let user = create_user(&mut directory, &name).await;
    let dn = format!("cn={name},ou=users,dc=cloudron");
    assert_eq!(login(&env, &name, PASSWORD).await, Ok(dn.clone()));
    assert_eq!(login(&env, &user.email, PASSWORD).await, Ok(dn.clone()));
    // Both attributes compare without case, as users type them.
    assert_eq!(
        login(&env, &user.email.to_uppercase(), PASSWORD).await,
        Ok(dn.clone())
    );
    assert_eq!(
        login(&env, &name, "wrong horse battery").await,
        Err("bind failed: 49".to_owned())
    );
    assert_eq!(
        login(&env, "nobody-at-all", PASSWORD).await,
        Err("0 entries found".to_owned())
    );
    // The `cn=<username>,ou=users` bind of the reference's ldapsearch example works as well.
    assert!(bind(&env["CLOUDRON_LDAP_URL"], &dn, PASSWORD).await.is_ok());
    assert!(list(&mut addon).await.contains(&app));
    deprovision(&mut addon, &app).await.unwrap();
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_sees_every_attribute_of_the_reference() {
    let service = start_service().await;
    let mut addon = service.client().await;
    let mut directory = directory(&service).await;
    let env = provision(&mut addon, request(&app_id("attrs")))
        .await
        .unwrap();
    let name = username("attrs");
    let user = create_user(&mut directory, &name).await;
    let group = username("staff");
    let created = create_group(&mut directory, &group).await;
    add_member(&mut directory, &group, &name).await;

    let mut app = bind_as_app(&env).await;
    let found = search(
        &mut app,
        &env["CLOUDRON_LDAP_USERS_BASE_DN"],
        &login_filter(&name),
        &["*", "+"],
    )
    .await
    .unwrap();
    let [entry] = found.as_slice() else {
        panic!("{found:?}")
    };
    assert!(values(entry, "objectClass").contains(&"user".to_owned()));
    assert_eq!(values(entry, "objectcategory"), ["person"]);
    for attribute in ["uid", "cn", "username", "samaccountname"] {
        assert_eq!(values(entry, attribute), [name.as_str()], "{attribute}");
    }
    assert_eq!(values(entry, "entryuuid"), [user.entry_uuid.as_str()]);
    assert_eq!(user.entry_uuid.len(), 36);
    assert_eq!(values(entry, "mail"), [user.email.as_str()]);
    assert_eq!(values(entry, "displayName"), ["Ada Lovelace"]);
    assert_eq!(values(entry, "givenName"), ["Ada"]);
    assert_eq!(values(entry, "sn"), ["Lovelace"]);
    assert_eq!(
        values(entry, "mailAlternateAddress"),
        [user.alternate_email.as_str()]
    );
    assert_eq!(
        values(entry, "memberof"),
        [format!("cn={group},ou=groups,dc=cloudron")]
    );

    let found = search(
        &mut app,
        &env["CLOUDRON_LDAP_GROUPS_BASE_DN"],
        &format!("(&(objectclass=group)(cn={group}))"),
        &["*"],
    )
    .await
    .unwrap();
    let [entry] = found.as_slice() else {
        panic!("{found:?}")
    };
    assert_eq!(values(entry, "gidnumber"), [created.gid_number.to_string()]);
    assert_eq!(values(entry, "memberuid"), [name.as_str()]);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_cannot_write_read_password_hashes_or_see_other_apps() {
    let service = start_service().await;
    let mut addon = service.client().await;
    let mut directory = directory(&service).await;
    let a = provision(&mut addon, request(&app_id("ro-a")))
        .await
        .unwrap();
    let b = provision(&mut addon, request(&app_id("ro-b")))
        .await
        .unwrap();
    let name = username("victim");
    create_user(&mut directory, &name).await;
    let dn = format!("cn={name},ou=users,dc=cloudron");
    let mut app = bind_as_app(&a).await;

    // Reading: every attribute but the password.
    let found = search(&mut app, &dn, "(objectClass=*)", &["*", "userPassword"])
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert!(!values(&found[0], "mail").is_empty());
    assert!(values(&found[0], "userPassword").is_empty(), "{found:?}");
    let by_hash = search(
        &mut app,
        "ou=users,dc=cloudron",
        "(userPassword=*)",
        &["dn"],
    )
    .await
    .unwrap();
    assert!(
        by_hash.is_empty(),
        "a filter on userPassword reveals {by_hash:?}"
    );

    // Writing: nothing, anywhere.
    let changed = app
        .modify(
            &dn,
            vec![Mod::Replace("mail", HashSet::from(["evil@example.com"]))],
        )
        .await
        .unwrap();
    assert_eq!(changed.rc, 50, "modify: {changed:?}");
    let planted = app
        .add(
            "cn=planted,ou=users,dc=cloudron",
            vec![
                ("objectClass", HashSet::from(["user"])),
                ("cn", HashSet::from(["planted"])),
                ("sn", HashSet::from(["planted"])),
            ],
        )
        .await
        .unwrap();
    assert_eq!(planted.rc, 50, "add: {planted:?}");
    let deleted = app.delete(&dn).await.unwrap();
    assert_eq!(deleted.rc, 50, "delete: {deleted:?}");
    let reset = PasswordModify {
        user_id: Some(&dn),
        old_pass: None,
        new_pass: Some("taken over by the app"),
    };
    let reset = app.extended(reset).await.unwrap().1;
    assert_eq!(reset.rc, 50, "password change: {reset:?}");
    assert!(login(&a, &name, PASSWORD).await.is_ok());

    // Other apps: invisible, and their password is theirs.
    let others = search(&mut app, "ou=apps,dc=cloudron", "(objectClass=*)", &["*"])
        .await
        .unwrap_or_default();
    assert!(
        others
            .iter()
            .all(|entry| entry.dn == a["CLOUDRON_LDAP_BIND_DN"]),
        "{others:?}"
    );
    assert_eq!(
        bind(
            &a["CLOUDRON_LDAP_URL"],
            &b["CLOUDRON_LDAP_BIND_DN"],
            &a["CLOUDRON_LDAP_BIND_PASSWORD"]
        )
        .await
        .err(),
        Some(49)
    );
    assert_ne!(
        a["CLOUDRON_LDAP_BIND_PASSWORD"],
        b["CLOUDRON_LDAP_BIND_PASSWORD"]
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn provision_is_idempotent_and_deprovision_ends_the_bind() {
    let service = start_service().await;
    let mut addon = service.client().await;
    let app = app_id("lifecycle");
    let first = provision(&mut addon, request(&app)).await.unwrap();
    let second = provision(&mut addon, request(&app)).await.unwrap();
    assert_eq!(first, second);
    bind_as_app(&second).await;

    let mut rotated = request(&app);
    rotated.credential_generation = 1;
    let rotated = provision(&mut addon, rotated).await.unwrap();
    assert_ne!(
        rotated["CLOUDRON_LDAP_BIND_PASSWORD"],
        first["CLOUDRON_LDAP_BIND_PASSWORD"]
    );
    bind_as_app(&rotated).await;
    let old = bind(
        &first["CLOUDRON_LDAP_URL"],
        &first["CLOUDRON_LDAP_BIND_DN"],
        &first["CLOUDRON_LDAP_BIND_PASSWORD"],
    )
    .await;
    assert_eq!(old.err(), Some(49), "the old password still works");

    deprovision(&mut addon, &app).await.unwrap();
    let after = bind(
        &rotated["CLOUDRON_LDAP_URL"],
        &rotated["CLOUDRON_LDAP_BIND_DN"],
        &rotated["CLOUDRON_LDAP_BIND_PASSWORD"],
    )
    .await;
    assert_eq!(after.err(), Some(49), "the account survived Deprovision");
    deprovision(&mut addon, &app).await.unwrap();
    assert!(!list(&mut addon).await.contains(&app));
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_refused_with_nothing_made() {
    let service = start_service().await;
    let mut addon = service.client().await;
    for bad in ["", "x'; drop", "a,ou=users", "*", &"a".repeat(65)] {
        expect_status(
            provision(&mut addon, request(bad)).await,
            Code::InvalidArgument,
            "app_id",
        );
    }
    let opts = app_id("opts");
    let mut wrong_options = request(&opts);
    wrong_options.options =
        Some(fleet_shared::proto::addon::provision_request::Options::Redis(Default::default()));
    expect_status(
        provision(&mut addon, wrong_options).await,
        Code::InvalidArgument,
        "options",
    );
    expect_status(
        deprovision(&mut addon, "").await,
        Code::InvalidArgument,
        "app_id",
    );
    assert!(!list(&mut addon).await.contains(&opts));
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_bound_as_itself_reads_the_directory_but_no_passwords() {
    let service = start_service().await;
    let mut directory = directory(&service).await;
    let (me, other) = (username("me"), username("neighbour"));
    create_user(&mut directory, &me).await;
    create_user(&mut directory, &other).await;
    let group = username("crew");
    create_group(&mut directory, &group).await;
    add_member(&mut directory, &group, &me).await;
    let url = slapd().url();
    let my_dn = format!("cn={me},ou=users,dc=cloudron");
    let other_dn = format!("cn={other},ou=users,dc=cloudron");
    let mut user = bind(&url, &my_dn, PASSWORD).await.unwrap();

    // The reference's `ldapsearch -D cn=<username>,ou=users,... -b ou=users,...` lists users,
    // and an app that binds as the user finds its entry and groups.
    let found = search(
        &mut user,
        "ou=users,dc=cloudron",
        &login_filter(&me),
        &["memberOf"],
    )
    .await
    .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        values(&found[0], "memberOf"),
        [format!("cn={group},ou=groups,dc=cloudron")]
    );
    let all = search(
        &mut user,
        "ou=users,dc=cloudron",
        "(objectclass=user)",
        &["dn"],
    )
    .await
    .unwrap();
    assert!(all.iter().any(|entry| entry.dn == other_dn));
    let groups = search(
        &mut user,
        "ou=groups,dc=cloudron",
        &format!("(cn={group})"),
        &["memberUid"],
    )
    .await
    .unwrap();
    assert_eq!(values(&groups[0], "memberUid"), [me.as_str()]);

    // No password hashes, no writes, no app accounts.
    let hashes = search(
        &mut user,
        "ou=users,dc=cloudron",
        "(userPassword=*)",
        &["userPassword"],
    )
    .await
    .unwrap();
    assert!(hashes.is_empty(), "{hashes:?}");
    let changed = user
        .modify(
            &other_dn,
            vec![Mod::Replace("mail", HashSet::from(["evil@example.com"]))],
        )
        .await
        .unwrap();
    assert_eq!(changed.rc, 50, "{changed:?}");
    let changed = user
        .modify(&my_dn, vec![Mod::Replace("sn", HashSet::from(["Renamed"]))])
        .await
        .unwrap();
    assert_eq!(changed.rc, 50, "{changed:?}");
    let apps = search(&mut user, "ou=apps,dc=cloudron", "(objectClass=*)", &["dn"])
        .await
        .unwrap_or_default();
    assert!(apps.is_empty(), "{apps:?}");
    service.stop().await;
}
