//! The Directory API: users, groups and memberships as apps then see them, its errors, hostile
//! names, and slapd going away.

use std::time::Duration;

use fleet_shared::{
    proto::directory::{
        CreateGroupRequest, CreateUserRequest, DeleteGroupRequest, DeleteUserRequest,
        RemoveMemberRequest, SetPasswordRequest, UpdateUserRequest,
    },
    testkit::{LdapServer, harness::eventually},
};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::support::*;

/// The user's `memberOf` as the app reads it.
async fn member_of(env: &std::collections::HashMap<String, String>, name: &str) -> Vec<String> {
    let mut app = bind_as_app(env).await;
    let found = search(
        &mut app,
        &env["CLOUDRON_LDAP_USERS_BASE_DN"],
        &login_filter(name),
        &["memberOf"],
    )
    .await
    .unwrap();
    let mut groups = values(&found[0], "memberOf");
    groups.sort();
    groups
}

/// The group's `memberUid`s as ListGroups returns them.
async fn members_of(directory: &mut DirectoryTestClient, group: &str) -> Vec<String> {
    let listed = groups(directory).await;
    listed
        .into_iter()
        .find(|g| g.name == group)
        .unwrap()
        .members
}

fn group_dn(name: &str) -> String {
    format!("cn={name},ou=groups,dc=cloudron")
}

#[tokio::test(flavor = "multi_thread")]
async fn member_of_follows_membership_changes() {
    let service = start_service().await;
    let mut addon = service.client().await;
    let mut directory = directory(&service).await;
    let env = provision(&mut addon, request(&app_id("memberof")))
        .await
        .unwrap();
    let name = username("member");
    let other = username("other");
    create_user(&mut directory, &name).await;
    create_user(&mut directory, &other).await;
    let (g1, g2) = (username("g1"), username("g2"));
    let first = create_group(&mut directory, &g1).await;
    let second = create_group(&mut directory, &g2).await;
    assert!(first.gid_number >= 10000 && second.gid_number >= 10000);
    assert_ne!(first.gid_number, second.gid_number);
    assert!(member_of(&env, &name).await.is_empty());

    add_member(&mut directory, &g1, &name).await;
    add_member(&mut directory, &g1, &name).await; // idempotent
    add_member(&mut directory, &g2, &name).await;
    add_member(&mut directory, &g1, &other).await;
    let mut both = vec![group_dn(&g1), group_dn(&g2)];
    both.sort();
    assert_eq!(member_of(&env, &name).await, both);
    let listed = users(&mut directory).await;
    let user = listed.iter().find(|u| u.username == name).unwrap();
    let mut names = vec![g1.clone(), g2.clone()];
    names.sort_by_key(|n| n.to_lowercase());
    assert_eq!(user.groups, names);
    let mut members = vec![name.clone(), other.clone()];
    members.sort();
    assert_eq!(members_of(&mut directory, &g1).await, members);

    let remove = |group: &str| RemoveMemberRequest {
        group: group.to_owned(),
        username: name.clone(),
    };
    directory.remove_member(remove(&g1)).await.unwrap();
    directory.remove_member(remove(&g1)).await.unwrap(); // idempotent
    assert_eq!(member_of(&env, &name).await, [group_dn(&g2)]);
    // Deleting a group drops it from its members.
    let delete = DeleteGroupRequest { name: g2.clone() };
    directory.delete_group(delete.clone()).await.unwrap();
    assert!(member_of(&env, &name).await.is_empty());
    expect_status(directory.delete_group(delete).await, Code::NotFound, &g2);
    // Deleting a user drops it from its groups' memberUid.
    let delete = DeleteUserRequest {
        username: other.clone(),
    };
    directory.delete_user(delete.clone()).await.unwrap();
    let members = members_of(&mut directory, &g1).await;
    assert!(members.is_empty(), "{members:?}");
    expect_status(directory.delete_user(delete).await, Code::NotFound, &other);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_names_are_stored_literally_and_cannot_widen_a_search() {
    let service = start_service().await;
    let mut addon = service.client().await;
    let mut directory = directory(&service).await;
    let env = provision(&mut addon, request(&app_id("hostile")))
        .await
        .unwrap();
    let bystander = username("bystander");
    create_user(&mut directory, &bystander).await;
    let suffix = username("");
    let hostile: Vec<String> = [
        "*",
        "a)(uid=*",
        "x,ou=apps,dc=cloudron",
        r"back\slash",
        "eq=uals",
        "(",
        "#hash",
        r#"quo"te+plus<>;"#,
    ]
    .iter()
    .map(|stem| format!("{stem}{suffix}"))
    .collect();
    let group = username("hostile-group*)(");
    create_group(&mut directory, &group).await;
    add_member(&mut directory, &group, &bystander).await;
    for name in &hostile {
        let user = create_user(&mut directory, name).await;
        assert_eq!(&user.username, name);
        add_member(&mut directory, &group, name).await;
        // The escaped login filter finds this user and no one else, and logs it in.
        let dn = login(&env, name, PASSWORD)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut app = bind_as_app(&env).await;
        let found = search(&mut app, &dn, "(objectClass=*)", &["username"])
            .await
            .unwrap();
        assert_eq!(values(&found[0], "username"), [name.as_str()]);
    }
    let listed = users(&mut directory).await;
    for name in &hostile {
        assert!(
            listed.iter().any(|u| &u.username == name),
            "{name} not listed"
        );
    }
    let members = members_of(&mut directory, &group).await;
    assert_eq!(members.len(), hostile.len() + 1, "{members:?}");
    // Taking `*…` out of the group and deleting it touches no one else.
    let star = &hostile[0];
    let remove = RemoveMemberRequest {
        group: group.clone(),
        username: star.clone(),
    };
    directory.remove_member(remove).await.unwrap();
    let delete = DeleteUserRequest {
        username: hostile[1].clone(),
    };
    directory.delete_user(delete).await.unwrap();
    let members = members_of(&mut directory, &group).await;
    assert!(members.contains(&bystander) && members.len() == hostile.len() - 1);
    // NUL cannot be stored, nor smuggled into a filter.
    let mut nul = new_user("a\0b");
    expect_status(
        directory.create_user(nul.clone()).await,
        Code::InvalidArgument,
        "username",
    );
    nul.username = "*".to_owned();
    nul.email = "*".to_owned();
    expect_status(
        directory.create_user(nul).await,
        Code::InvalidArgument,
        "email",
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn users_are_changed_and_errors_are_clear() {
    let service = start_service().await;
    let mut addon = service.client().await;
    let mut directory = directory(&service).await;
    let env = provision(&mut addon, request(&app_id("errors")))
        .await
        .unwrap();
    let name = username("grace");
    let user = create_user(&mut directory, &name).await;

    // A username is taken whatever its case; an email cannot be another user's.
    expect_status(
        directory.create_user(new_user(&name.to_uppercase())).await,
        Code::AlreadyExists,
        "already exists",
    );
    let other = username("other");
    let mut same_email = new_user(&other);
    same_email.email = user.email.to_uppercase();
    expect_status(
        directory.create_user(same_email).await,
        Code::AlreadyExists,
        "email",
    );
    assert!(
        !users(&mut directory)
            .await
            .iter()
            .any(|u| u.username == other)
    );

    // Update: set fields change, cleared optional ones fall back, the rest stays.
    let update = UpdateUserRequest {
        username: name.clone(),
        email: Some(format!("{name}@new.example.com")),
        display_name: Some(String::new()),
        given_name: Some(String::new()),
        family_name: Some("Hopper".to_owned()),
        alternate_email: None,
    };
    let changed = directory
        .update_user(update)
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(changed.email, format!("{name}@new.example.com"));
    assert_eq!(changed.display_name, name);
    assert_eq!(changed.given_name, "");
    assert_eq!(changed.family_name, "Hopper");
    assert_eq!(changed.alternate_email, user.alternate_email);
    assert_eq!(changed.entry_uuid, user.entry_uuid);
    assert!(login(&env, &changed.email, PASSWORD).await.is_ok());
    assert!(login(&env, &user.email, PASSWORD).await.is_err());

    // Passwords: set, checked, never echoed.
    let set = SetPasswordRequest {
        username: name.clone(),
        password: "a new long password".to_owned(),
    };
    directory.set_password(set).await.unwrap();
    assert!(login(&env, &name, "a new long password").await.is_ok());
    assert!(login(&env, &name, PASSWORD).await.is_err());
    let short = SetPasswordRequest {
        username: name.clone(),
        password: "hunter2".to_owned(),
    };
    let status = expect_status(
        directory.set_password(short).await,
        Code::InvalidArgument,
        "password",
    );
    assert!(!status.message().contains("hunter2"));

    // Unknown users and groups.
    let ghost = username("ghost");
    let missing = SetPasswordRequest {
        username: ghost.clone(),
        password: "long enough password".to_owned(),
    };
    expect_status(
        directory.set_password(missing).await,
        Code::NotFound,
        &ghost,
    );
    let missing = UpdateUserRequest {
        username: ghost.clone(),
        display_name: Some("x".to_owned()),
        ..Default::default()
    };
    expect_status(directory.update_user(missing).await, Code::NotFound, &ghost);
    let missing = fleet_shared::proto::directory::AddMemberRequest {
        group: ghost.clone(),
        username: name.clone(),
    };
    expect_status(
        directory.add_member(missing).await,
        Code::NotFound,
        "no group",
    );

    // Groups: names and explicit gid numbers are unique.
    let group = username("team");
    let created = create_group(&mut directory, &group).await;
    let again = CreateGroupRequest {
        name: group.clone(),
        gid_number: 0,
    };
    expect_status(
        directory.create_group(again).await,
        Code::AlreadyExists,
        "already exists",
    );
    let same_gid = CreateGroupRequest {
        name: username("team2"),
        gid_number: created.gid_number,
    };
    expect_status(
        directory.create_group(same_gid).await,
        Code::AlreadyExists,
        "gid_number",
    );

    // A user without a password exists but cannot log in until it gets one.
    let no_password = username("nopw");
    let mut request = new_user(&no_password);
    request.password = None;
    directory.create_user(request).await.unwrap();
    assert!(login(&env, &no_password, "").await.is_err());
    assert!(login(&env, &no_password, PASSWORD).await.is_err());
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_directory_needs_the_token() {
    let service = start_service().await;
    let mut anonymous = directory_with(&service, None).await;
    let request = CreateUserRequest {
        username: username("intruder"),
        ..new_user("intruder")
    };
    expect_status(
        anonymous.create_user(request).await,
        Code::Unauthenticated,
        "",
    );
    let mut wrong = directory_with(&service, Some("not-the-token-0123456789")).await;
    expect_status(
        wrong
            .list_users(fleet_shared::proto::directory::ListUsersRequest {})
            .await,
        Code::Unauthenticated,
        "",
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slapd_down_is_unavailable_and_not_serving() {
    let mut own = tokio::task::spawn_blocking(LdapServer::start)
        .await
        .unwrap()
        .unwrap();
    let service = start_service_with(&own).await;
    let mut addon = service.client().await;
    let mut directory = directory(&service).await;
    provision(&mut addon, request(&app_id("before")))
        .await
        .unwrap();

    own.stop().unwrap();
    expect_status(
        provision(&mut addon, request(&app_id("down"))).await,
        Code::Unavailable,
        "slapd is unavailable",
    );
    let status = expect_status(
        directory.create_user(new_user(&username("down"))).await,
        Code::Unavailable,
        "slapd is unavailable",
    );
    assert!(
        !status.message().contains(own.admin_password()),
        "{status:?}"
    );
    expect_status(
        directory
            .list_groups(fleet_shared::proto::directory::ListGroupsRequest {})
            .await,
        Code::Unavailable,
        "slapd",
    );
    let channel =
        tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{}", service.port()))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let health_is = |service: &'static str, wanted: ServingStatus| {
        let channel = channel.clone();
        move || {
            let mut health = HealthClient::new(channel.clone());
            async move {
                health
                    .check(HealthCheckRequest {
                        service: service.to_owned(),
                    })
                    .await
                    .is_ok_and(|r| r.into_inner().status == wanted as i32)
            }
        }
    };
    assert!(
        eventually(
            Duration::from_secs(20),
            health_is("fleet.directory.v1.Directory", ServingStatus::NotServing)
        )
        .await,
        "health should report NOT_SERVING while slapd is down"
    );
    assert!(
        eventually(
            Duration::from_secs(1),
            health_is("", ServingStatus::NotServing)
        )
        .await
    );
    service.stop().await;
}
