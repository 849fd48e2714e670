//! An admin manages users; a user may not.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

const ADMIN_READS: [&str; 2] = ["/api/admin/users", "/api/admin/stats"];

#[tokio::test]
async fn admin_routes_are_401_without_a_session_and_403_for_a_user() {
    let app = spawn_app().await;
    let user = app.register_and_login("alice").await;
    let id = app.id_of(&user).await;
    let writes = [
        (
            Method::PATCH,
            format!("/api/admin/users/{id}"),
            Some(json!({"role": "admin"})),
        ),
        (Method::DELETE, format!("/api/admin/users/{id}"), None),
        (
            Method::DELETE,
            format!("/api/admin/users/{id}/sessions"),
            None,
        ),
        (Method::POST, "/api/admin/backup".to_owned(), None),
    ];
    for path in ADMIN_READS {
        expect_error(
            app.get(path, None).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
        expect_error(
            app.get(path, Some(&user)).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
    }
    for (method, path, body) in writes {
        let res = app
            .send(method.clone(), &path, "connect.sid=x", body.clone())
            .await;
        expect_error(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
        let res = app.send(method, &path, &user, body).await;
        expect_error(res, StatusCode::FORBIDDEN, "forbidden").await;
    }
    assert_eq!(
        app.me(&user).await.status(),
        StatusCode::OK,
        "nothing happened to alice"
    );
}

#[tokio::test]
async fn paging_users_never_skips_or_repeats_one_registered_meanwhile() {
    let app = spawn_app().await;
    let (admin, _) = app.admin().await;
    for n in 0..5 {
        app.register(&format!("user{n}")).await;
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(a) => format!("/api/admin/users?limit=2&after={a}"),
            None => "/api/admin/users?limit=2".to_owned(),
        };
        let res = app.get(&path, Some(&admin)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["cache-control"], "no-store");
        let body: Value = res.json().await.unwrap();
        let users = body["users"].as_array().unwrap();
        assert!(users.len() <= 2);
        seen.extend(
            users
                .iter()
                .map(|u| u["username"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        if pages == 1 {
            app.register("latecomer").await;
        }
        match body["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    let mut expected = vec!["root".to_owned()];
    expected.extend((0..5).map(|n| format!("user{n}")));
    expected.push("latecomer".into());
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn a_bad_page_request_is_400() {
    let app = spawn_app().await;
    let (admin, _) = app.admin().await;
    for query in ["limit=0", "limit=201", "limit=many", "after=zz"] {
        let res = app
            .get(&format!("/api/admin/users?{query}"), Some(&admin))
            .await;
        expect_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
}

#[tokio::test]
async fn a_role_change_holds_from_the_very_next_request() {
    let app = spawn_app().await;
    let (admin, _) = app.admin().await;
    let alice = app.register_and_login("alice").await;
    let id = app.id_of(&alice).await;
    assert_eq!(
        app.get("/api/admin/stats", Some(&alice)).await.status(),
        StatusCode::FORBIDDEN
    );
    let res = app
        .send(
            Method::PATCH,
            &format!("/api/admin/users/{id}"),
            &admin,
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["role"], "admin");
    assert_eq!(
        app.get("/api/admin/stats", Some(&alice)).await.status(),
        StatusCode::OK
    );
    let res = app
        .send(
            Method::PATCH,
            &format!("/api/admin/users/{id}"),
            &admin,
            Some(json!({"role": "user"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        app.get("/api/admin/stats", Some(&alice)).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn an_invalid_role_or_unknown_user_is_refused() {
    let app = spawn_app().await;
    let (admin, root_id) = app.admin().await;
    let res = app
        .send(
            Method::PATCH,
            &format!("/api/admin/users/{root_id}"),
            &admin,
            Some(json!({"role": "god"})),
        )
        .await;
    let message = expect_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(message.contains("role"));
    for path in [
        "/api/admin/users/00000000000000ff",
        "/api/admin/users/not-an-id",
    ] {
        let res = app
            .send(Method::PATCH, path, &admin, Some(json!({"role": "user"})))
            .await;
        expect_error(res, StatusCode::NOT_FOUND, "not_found").await;
        let res = app.send(Method::DELETE, path, &admin, None).await;
        expect_error(res, StatusCode::NOT_FOUND, "not_found").await;
        let res = app
            .send(Method::DELETE, &format!("{path}/sessions"), &admin, None)
            .await;
        expect_error(res, StatusCode::NOT_FOUND, "not_found").await;
    }
}

#[tokio::test]
async fn removing_a_user_ends_their_sessions_and_frees_their_name() {
    let app = spawn_app().await;
    let (admin, _) = app.admin().await;
    let alice = app.register_and_login("alice").await;
    let id = app.id_of(&alice).await;
    let res = app
        .send(
            Method::DELETE,
            &format!("/api/admin/users/{id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me(&alice).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.login("alice", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.register("alice").await.status(),
        StatusCode::CREATED,
        "name and email free"
    );
    let res = app
        .send(
            Method::DELETE,
            &format!("/api/admin/users/{id}"),
            &admin,
            None,
        )
        .await;
    expect_error(res, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn revoking_a_users_sessions() {
    let app = spawn_app().await;
    let (admin, _) = app.admin().await;
    let alice = app.register_and_login("alice").await;
    let again = cookie_of(&app.login("alice", PASSWORD).await);
    let id = app.id_of(&alice).await;
    let res = app
        .send(
            Method::DELETE,
            &format!("/api/admin/users/{id}/sessions"),
            &admin,
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"revoked": 2}));
    assert_eq!(app.me(&alice).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(&again).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(&admin).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn stats_count_users_and_sessions() {
    let app = spawn_app().await;
    let (admin, _) = app.admin().await;
    app.register_and_login("alice").await;
    let body: Value = app
        .get("/api/admin/stats", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!({"users": 2, "sessions": 2, "wsConnections": 0}));
}

#[tokio::test]
async fn the_last_admin_can_be_neither_removed_nor_demoted() {
    let app = spawn_app().await;
    let (admin, root_id) = app.admin().await;
    let res = app
        .send(
            Method::PATCH,
            &format!("/api/admin/users/{root_id}"),
            &admin,
            Some(json!({"role": "user"})),
        )
        .await;
    expect_error(res, StatusCode::CONFLICT, "last_admin").await;
    let res = app
        .send(
            Method::DELETE,
            &format!("/api/admin/users/{root_id}"),
            &admin,
            None,
        )
        .await;
    expect_error(res, StatusCode::CONFLICT, "last_admin").await;
    // With a second admin, the first may step down.
    let alice = app.register_and_login("alice").await;
    let alice_id = app.id_of(&alice).await;
    app.send(
        Method::PATCH,
        &format!("/api/admin/users/{alice_id}"),
        &admin,
        Some(json!({"role": "admin"})),
    )
    .await;
    let res = app
        .send(
            Method::PATCH,
            &format!("/api/admin/users/{root_id}"),
            &admin,
            Some(json!({"role": "user"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_admins_demoting_each_other_at_once_leave_one_admin() {
    let app = spawn_app().await;
    let (root, root_id) = app.admin().await;
    let alice = app.register_and_login("alice").await;
    let alice_id = app.id_of(&alice).await;
    app.send(
        Method::PATCH,
        &format!("/api/admin/users/{alice_id}"),
        &root,
        Some(json!({"role": "admin"})),
    )
    .await;
    let (alice_path, root_path) = (
        format!("/api/admin/users/{alice_id}"),
        format!("/api/admin/users/{root_id}"),
    );
    let a = app.send(
        Method::PATCH,
        &alice_path,
        &root,
        Some(json!({"role": "user"})),
    );
    let b = app.send(
        Method::PATCH,
        &root_path,
        &alice,
        Some(json!({"role": "user"})),
    );
    let (a, b) = tokio::join!(a, b);
    let ok = [a.status(), b.status()]
        .iter()
        .filter(|s| **s == StatusCode::OK)
        .count();
    assert!(ok <= 1, "both demotions succeeded");
    let mut admins = 0;
    for cookie in [&root, &alice] {
        if app.get("/api/admin/stats", Some(cookie)).await.status() == StatusCode::OK {
            admins += 1;
        }
    }
    assert_eq!(admins, 2 - ok, "exactly the demoted one lost the role");
}

#[tokio::test]
async fn an_admin_downloads_a_backup_that_reads_back_and_a_forged_credential_gets_none() {
    use sessiond::store::Snapshot;
    let app = spawn_app().await;
    let (admin, _) = app.admin().await;
    app.register_and_login("alice").await;
    assert_eq!(app.metric("sessiond_backup_last_bytes").await, 0);
    assert_eq!(
        app.metric("sessiond_backup_last_timestamp_seconds").await,
        0
    );
    let res = app
        .send(Method::POST, "/api/admin/backup", &admin, None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/octet-stream");
    let file = res.bytes().await.unwrap();
    assert!(file.starts_with(b"sessiond backup\n"));
    let snapshot = Snapshot::from_file(&file).unwrap();
    let mut names: Vec<_> = snapshot
        .users
        .iter()
        .map(|(u, _)| u.username.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["alice", "root"]);
    // Both sessions (root's and alice's) are in it.
    assert_eq!(snapshot.sessions.len(), 2);
    assert_eq!(
        app.metric("sessiond_backup_last_bytes").await,
        file.len() as u64
    );
    let at = app.metric("sessiond_backup_last_timestamp_seconds").await;
    let now = sessiond::store::now_ms() / 1000;
    assert!(now.abs_diff(at) <= 5, "the last backup at {at}, now {now}");
    assert_eq!(
        app.metric("sessiond_backups_total{result=\"taken\"}").await,
        1
    );
    let forged = app
        .client
        .post(app.url("/api/admin/backup"))
        .bearer_auth("0".repeat(64))
        .send()
        .await
        .unwrap();
    expect_error(forged, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn the_server_writes_backups_on_its_schedule_and_keeps_the_newest() {
    use sessiond::store::Snapshot;
    let dir = tempfile::tempdir().unwrap();
    let into = dir.path().to_owned();
    let app = spawn_app_with(move |c| {
        c.backup.dir = into;
        c.backup.every = std::time::Duration::from_secs(1);
        c.backup.keep = 2;
    })
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while app.metric("sessiond_backups_total{result=\"taken\"}").await < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "three backups in 20 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Not a `.partial` of the next one, which may be being written.
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "backup"))
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    for path in kept {
        let file = std::fs::read(&path).unwrap();
        let snapshot = Snapshot::from_file(&file).unwrap();
        assert_eq!(snapshot.users[0].0.username, "root");
    }
}
