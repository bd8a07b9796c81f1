//! Bind accounts as an attacker sees them: app ids that differ only in case (DNs compare
//! without case) get distinct accounts, and an entry at an app's account name that records
//! another owner is refused and left exactly as it was.

use std::collections::HashSet;

use tonic::Code;

use crate::support::*;

/// The bundle's password binds on the bundle's DN.
async fn binds(env: &std::collections::HashMap<String, String>) -> bool {
    bind(
        &env["CLOUDRON_LDAP_URL"],
        &env["CLOUDRON_LDAP_BIND_DN"],
        &env["CLOUDRON_LDAP_BIND_PASSWORD"],
    )
    .await
    .is_ok()
}

/// The `description` values of the entry `dn`, read as the administrator; `None` if absent.
async fn descriptions(dn: &str) -> Option<Vec<String>> {
    let mut admin = bind_as_admin().await;
    let found = admin
        .search(
            dn,
            ldap3::Scope::Base,
            "(objectClass=*)",
            vec!["description"],
        )
        .await
        .unwrap();
    if found.1.rc == 32 {
        return None;
    }
    let entry = found
        .0
        .into_iter()
        .map(ldap3::SearchEntry::construct)
        .next()?;
    Some(values(&entry, "description"))
}

/// Plants an app account at `dn` as the administrator, with `description` (if any) and the
/// password `password`.
async fn plant(dn: &str, cn: &str, description: Option<&str>, password: &str) {
    let mut admin = bind_as_admin().await;
    let mut attributes = vec![
        ("objectClass", HashSet::from(["appAccount"])),
        ("cn", HashSet::from([cn])),
        ("userPassword", HashSet::from([password])),
    ];
    if let Some(description) = description {
        attributes.push(("description", HashSet::from([description])));
    }
    let added = admin.add(dn, attributes).await.unwrap();
    assert_eq!(added.rc, 0, "planting {dn}: {added:?}");
}

async fn remove(dn: &str) {
    let mut admin = bind_as_admin().await;
    admin.delete(dn).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn ids_differing_in_case_get_distinct_accounts() {
    let service = start_service().await;
    let mut addon = service.client().await;
    let victim = app_id("victim");
    let attacker = victim.to_uppercase();
    let v = provision(&mut addon, request(&victim)).await.unwrap();
    let a = provision(&mut addon, request(&attacker)).await.unwrap();

    assert_ne!(v["CLOUDRON_LDAP_BIND_DN"], a["CLOUDRON_LDAP_BIND_DN"]);
    assert_eq!(v["CLOUDRON_LDAP_BIND_DN"], app_dn(&victim));
    assert_eq!(a["CLOUDRON_LDAP_BIND_DN"], app_dn(&attacker));
    assert!(
        !v["CLOUDRON_LDAP_BIND_DN"].eq_ignore_ascii_case(&a["CLOUDRON_LDAP_BIND_DN"]),
        "the DNs must differ even without case"
    );
    assert_ne!(
        v["CLOUDRON_LDAP_BIND_PASSWORD"],
        a["CLOUDRON_LDAP_BIND_PASSWORD"]
    );
    // The attacker's Provision did not reset the victim's password.
    assert!(binds(&v).await, "the victim's account no longer binds");
    assert!(binds(&a).await);
    // Neither password opens the other's account.
    let url = &v["CLOUDRON_LDAP_URL"];
    assert_eq!(
        bind(
            url,
            &v["CLOUDRON_LDAP_BIND_DN"],
            &a["CLOUDRON_LDAP_BIND_PASSWORD"]
        )
        .await
        .err(),
        Some(49)
    );
    assert_eq!(
        bind(
            url,
            &a["CLOUDRON_LDAP_BIND_DN"],
            &v["CLOUDRON_LDAP_BIND_PASSWORD"]
        )
        .await
        .err(),
        Some(49)
    );
    // Each entry records its own owner, and List returns the ids as given.
    assert_eq!(
        descriptions(&app_dn(&victim)).await,
        Some(vec![format!("fleet-app:{victim}")])
    );
    assert_eq!(
        descriptions(&app_dn(&attacker)).await,
        Some(vec![format!("fleet-app:{attacker}")])
    );
    let listed = list(&mut addon).await;
    assert!(
        listed.contains(&victim) && listed.contains(&attacker),
        "{listed:?}"
    );

    // Removing the attacker's leaves the victim's binding, and the other way round.
    deprovision(&mut addon, &attacker).await.unwrap();
    assert!(
        binds(&v).await,
        "Deprovision of the attacker removed the victim"
    );
    assert!(!binds(&a).await);
    let a = provision(&mut addon, request(&attacker)).await.unwrap();
    deprovision(&mut addon, &victim).await.unwrap();
    assert!(
        binds(&a).await,
        "Deprovision of the victim removed the other"
    );
    assert!(!binds(&v).await);
    deprovision(&mut addon, &attacker).await.unwrap();
    let listed = list(&mut addon).await;
    assert!(
        !listed.contains(&victim) && !listed.contains(&attacker),
        "{listed:?}"
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_entry_at_the_name_owned_by_another_is_refused_and_untouched() {
    let service = start_service().await;
    let mut addon = service.client().await;
    let app = app_id("squatted");
    let dn = app_dn(&app);
    let name = resource_name(&app);
    // Another owner, the same id in another case (the owner compares exactly), and no owner.
    let other_owner = format!("fleet-app:{}", app_id("squatter"));
    let case_owner = format!("fleet-app:{}", app.to_uppercase());
    for owner in [Some(other_owner.as_str()), Some(case_owner.as_str()), None] {
        plant(&dn, &name, owner, "planted password").await;
        let expected = owner
            .map(|owner| vec![owner.to_owned()])
            .unwrap_or_default();

        expect_status(
            provision(&mut addon, request(&app)).await,
            Code::FailedPrecondition,
            "does not belong to this app",
        );
        expect_status(
            deprovision(&mut addon, &app).await,
            Code::FailedPrecondition,
            "does not belong to this app",
        );
        // Untouched: the owner recorded and the password set by whoever planted it.
        assert_eq!(descriptions(&dn).await, Some(expected), "{owner:?}");
        assert!(
            bind(&slapd().url(), &dn, "planted password").await.is_ok(),
            "the planted entry's password changed ({owner:?})"
        );
        assert!(!list(&mut addon).await.contains(&app));
        remove(&dn).await;
    }
    // With the squatter gone, the app gets its account.
    let env = provision(&mut addon, request(&app)).await.unwrap();
    assert!(binds(&env).await);
    deprovision(&mut addon, &app).await.unwrap();
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_named_by_raw_app_id_are_removed_only_by_their_owner() {
    // Entries from before accounts were named by resource name: `cn=<app id>`.
    let service = start_service().await;
    let mut addon = service.client().await;
    let victim = app_id("legacy");
    let attacker = victim.to_uppercase();
    let legacy = format!("cn={victim},ou=apps,dc=cloudron");
    let owner = format!("fleet-app:{victim}");
    plant(&legacy, &victim, Some(&owner), "legacy password").await;
    assert!(list(&mut addon).await.contains(&victim));

    // `cn=<ATTACKER>` is the same DN without case: neither call of the attacker touches it.
    provision(&mut addon, request(&attacker)).await.unwrap();
    deprovision(&mut addon, &attacker).await.unwrap();
    assert_eq!(descriptions(&legacy).await, Some(vec![owner.clone()]));
    assert!(
        bind(&slapd().url(), &legacy, "legacy password")
            .await
            .is_ok()
    );

    // The owner's Provision moves it to the new name and removes the old entry.
    let env = provision(&mut addon, request(&victim)).await.unwrap();
    assert_eq!(env["CLOUDRON_LDAP_BIND_DN"], app_dn(&victim));
    assert!(binds(&env).await);
    assert_eq!(descriptions(&legacy).await, None);
    deprovision(&mut addon, &victim).await.unwrap();

    // And the owner's Deprovision removes one that is still there.
    plant(&legacy, &victim, Some(&owner), "legacy password").await;
    deprovision(&mut addon, &victim).await.unwrap();
    assert_eq!(descriptions(&legacy).await, None);
    assert!(!list(&mut addon).await.contains(&victim));
    service.stop().await;
}
