//! The chat over a real WebSocket client: who may connect, what flows,
//! and how ending a session reaches its sockets.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn an_upgrade_needs_a_session_and_a_good_origin() {
    let app = spawn_app().await;
    assert_eq!(
        app.ws_connect(None, None).await.err(),
        Some(StatusCode::UNAUTHORIZED)
    );
    assert_eq!(
        app.ws_connect(Some("connect.sid=forged"), None).await.err(),
        Some(StatusCode::UNAUTHORIZED)
    );
    let cookie = app.register_and_login("alice").await;
    assert_eq!(
        app.ws_connect(Some(&cookie), Some("http://evil.example"))
            .await
            .err(),
        Some(StatusCode::FORBIDDEN)
    );
    let own = format!("http://{}", app.addr);
    assert!(app.ws_connect(Some(&cookie), Some(&own)).await.is_ok());
}

#[tokio::test]
async fn a_plain_get_of_the_chat_route_is_a_clear_400() {
    let app = spawn_app().await;
    let cookie = app.register_and_login("alice").await;
    let res = app.get("/ws/chat", Some(&cookie)).await;
    expect_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn everyone_in_the_room_gets_a_message_from_its_true_sender() {
    let app = spawn_app().await;
    let alice = app.register_and_login("alice").await;
    let bob = app.register_and_login("bob").await;
    let carol = app.register_and_login("carol").await;
    let (mut a, joined) = app.ws_join(&alice, "general").await;
    assert_eq!(joined["room"], "general");
    assert_eq!(joined["history"], json!([]));
    let (mut b, _) = app.ws_join(&bob, "general").await;
    let (mut c, _) = app.ws_join(&carol, "elsewhere").await;
    ws_send(
        &mut a,
        json!({"type": "message", "room": "general", "text": "hi", "from": {"id": "x", "username": "mallory"}}),
    )
    .await;
    for ws in [&mut a, &mut b] {
        let m = ws_recv(ws).await;
        assert_eq!(m["type"], "message");
        assert_eq!(m["room"], "general");
        assert_eq!(m["text"], "hi");
        assert_eq!(
            m["from"]["username"], "alice",
            "the sender comes from the session"
        );
        assert_eq!(m["from"]["id"], app.id_of(&alice).await);
        assert!(m["id"].is_string() && m["sentAt"].is_string());
    }
    // carol, in another room, hears nothing; a message of her own arrives first.
    ws_send(&mut c, json!({"type": "join", "room": "elsewhere"})).await;
    assert_eq!(ws_recv(&mut c).await["type"], "joined");
}

#[tokio::test]
async fn a_bad_frame_gets_an_error_and_the_socket_stays_usable() {
    let app = spawn_app().await;
    let alice = app.register_and_login("alice").await;
    let (mut ws, _) = app.ws_join(&alice, "general").await;
    for (bad, code) in [
        (json!("not an object"), "invalid_frame"),
        (json!({"type": "shout", "room": "general"}), "invalid_frame"),
        (json!({"type": "join", "room": "Not Valid"}), "invalid_room"),
        (
            json!({"type": "message", "room": "unjoined", "text": "x"}),
            "not_joined",
        ),
        (
            json!({"type": "message", "room": "general", "text": ""}),
            "invalid_message",
        ),
    ] {
        ws_send(&mut ws, bad).await;
        let err = ws_recv(&mut ws).await;
        assert_eq!(err["type"], "error");
        assert_eq!(err["code"], code, "{err}");
        assert!(err["message"].is_string());
    }
    ws_send(
        &mut ws,
        json!({"type": "message", "room": "general", "text": "still here"}),
    )
    .await;
    assert_eq!(ws_recv(&mut ws).await["text"], "still here");
}

#[tokio::test]
async fn a_text_over_the_limit_gets_an_error_frame_and_the_socket_stays() {
    let app = spawn_app_with(|c| c.chat.max_message_chars = 10).await;
    let alice = app.register_and_login("alice").await;
    let (mut ws, _) = app.ws_join(&alice, "general").await;
    ws_send(
        &mut ws,
        json!({"type": "message", "room": "general", "text": "x".repeat(11)}),
    )
    .await;
    assert_eq!(ws_recv(&mut ws).await["code"], "invalid_message");
    ws_send(
        &mut ws,
        json!({"type": "message", "room": "general", "text": "ok"}),
    )
    .await;
    assert_eq!(ws_recv(&mut ws).await["text"], "ok");
}

#[tokio::test]
async fn a_frame_over_64_kib_closes_the_socket_with_1009_and_a_reason() {
    for size in [70_000, 300_000] {
        let app = spawn_app().await;
        let alice = app.register_and_login("alice").await;
        let (mut ws, _) = app.ws_join(&alice, "general").await;
        ws_send(
            &mut ws,
            json!({"type": "message", "room": "general", "text": "y".repeat(size)}),
        )
        .await;
        let (code, reason) = ws_close_frame(&mut ws).await;
        assert_eq!(code, 1009, "a frame of {size} bytes");
        assert!(reason.contains("64 KiB"), "{reason}");
    }
}

#[tokio::test]
async fn a_frame_that_is_not_json_says_what_a_frame_looks_like() {
    let app = spawn_app().await;
    let alice = app.register_and_login("alice").await;
    let (mut ws, _) = app.ws_join(&alice, "general").await;
    {
        use futures_util::SinkExt;
        ws.send(tokio_tungstenite::tungstenite::Message::text("hello"))
            .await
            .unwrap();
    }
    let error = ws_recv(&mut ws).await;
    assert_eq!(error["code"], "invalid_frame");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(r#"{"type":"join","room":"general"}"#),
        "{message}"
    );
    assert!(!message.contains("expected ident"), "{message}");
    ws_send(&mut ws, json!({"type": "join"})).await;
    let missing = ws_recv(&mut ws).await;
    assert_eq!(missing["message"], "room: required.");
}

#[tokio::test]
async fn too_many_messages_a_second_are_rate_limited() {
    let app = spawn_app_with(|c| c.chat.max_messages_per_second = 3).await;
    let alice = app.register_and_login("alice").await;
    let (mut ws, _) = app.ws_join(&alice, "general").await;
    for n in 0..6 {
        ws_send(
            &mut ws,
            json!({"type": "message", "room": "general", "text": format!("m{n}")}),
        )
        .await;
    }
    let mut limited = 0;
    let mut delivered = 0;
    for _ in 0..6 {
        let frame = ws_recv(&mut ws).await;
        match frame["type"].as_str() {
            Some("message") => delivered += 1,
            Some("error") if frame["code"] == "rate_limited" => limited += 1,
            _ => panic!("{frame}"),
        }
    }
    assert!(
        delivered >= 3 && limited >= 1,
        "{delivered} delivered, {limited} limited"
    );
}

#[tokio::test]
async fn history_comes_with_join_and_pages_oldest_first() {
    let app = spawn_app_with(|c| c.chat.history_on_join = 3).await;
    let alice = app.register_and_login("alice").await;
    let (mut ws, _) = app.ws_join(&alice, "general").await;
    for n in 0..5 {
        ws_send(
            &mut ws,
            json!({"type": "message", "room": "general", "text": format!("m{n}")}),
        )
        .await;
        ws_recv(&mut ws).await;
    }
    let (_late, joined) = app.ws_join(&alice, "general").await;
    let texts = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(texts(&joined["history"]), ["m2", "m3", "m4"]);

    let page: Value = app
        .get("/api/chat/rooms/general/messages?limit=2", Some(&alice))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(texts(&page["messages"]), ["m3", "m4"]);
    let before = page["messages"][0]["id"].as_str().unwrap();
    let older: Value = app
        .get(
            &format!("/api/chat/rooms/general/messages?limit=2&before={before}"),
            Some(&alice),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(texts(&older["messages"]), ["m1", "m2"]);
    let all: Value = app
        .get("/api/chat/rooms/general/messages", Some(&alice))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(texts(&all["messages"]).len(), 5);
    let other: Value = app
        .get("/api/chat/rooms/other/messages", Some(&alice))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(other["messages"], json!([]));
}

#[tokio::test]
async fn the_history_route_checks_its_input_and_its_session() {
    let app = spawn_app().await;
    let alice = app.register_and_login("alice").await;
    let res = app.get("/api/chat/rooms/general/messages", None).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    for path in [
        "/api/chat/rooms/Bad%20Room/messages",
        "/api/chat/rooms/general/messages?limit=0",
        "/api/chat/rooms/general/messages?limit=500",
        "/api/chat/rooms/general/messages?before=xyz",
    ] {
        let res = app.get(path, Some(&alice)).await;
        expect_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
}

#[tokio::test]
async fn a_user_may_hold_only_so_many_sockets() {
    let app = spawn_app_with(|c| c.chat.max_sockets_per_user = 2).await;
    let alice = app.register_and_login("alice").await;
    let bob = app.register_and_login("bob").await;
    let first = app.ws_connect(Some(&alice), None).await.unwrap();
    let _second = app.ws_connect(Some(&alice), None).await.unwrap();
    assert_eq!(
        app.ws_connect(Some(&alice), None).await.err(),
        Some(StatusCode::TOO_MANY_REQUESTS)
    );
    assert!(
        app.ws_connect(Some(&bob), None).await.is_ok(),
        "the limit is per user"
    );
    drop(first);
    let mut freed = false;
    for _ in 0..50 {
        if app.ws_connect(Some(&alice), None).await.is_ok() {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "closing a socket frees its place");
}

#[tokio::test]
async fn open_sockets_are_counted() {
    let app = spawn_app().await;
    let (admin, _) = app.admin().await;
    let alice = app.register_and_login("alice").await;
    let _a = app.ws_connect(Some(&alice), None).await.unwrap();
    let _b = app.ws_connect(Some(&alice), None).await.unwrap();
    assert_eq!(app.metric("sessiond_ws_connections").await, 2);
    let stats: Value = app
        .get("/api/admin/stats", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["wsConnections"], 2);
}

#[tokio::test]
async fn socket_messages_count_as_activity() {
    let app = spawn_app_with(|c| {
        c.session.idle_timeout = Duration::from_millis(1500);
        c.session.touch_interval = Duration::ZERO;
        c.session.prune_interval = Duration::from_secs(3600);
    })
    .await;
    let alice = app.register_and_login("alice").await;
    let (mut ws, _) = app.ws_join(&alice, "general").await;
    for n in 0..8 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        ws_send(
            &mut ws,
            json!({"type": "message", "room": "general", "text": format!("{n}")}),
        )
        .await;
        assert_eq!(ws_recv(&mut ws).await["type"], "message");
    }
    assert_eq!(
        app.me(&alice).await.status(),
        StatusCode::OK,
        "3.2 s in, kept alive by the socket"
    );
}

/// Each way a session can end, and the socket it reaches.
mod endings {
    use super::*;

    #[tokio::test]
    async fn an_idle_timeout_closes_the_socket_at_its_deadline_and_is_not_activity() {
        let app = spawn_app_with(|c| {
            c.session.idle_timeout = Duration::from_secs(1);
            c.session.touch_interval = Duration::ZERO;
            c.session.prune_interval = Duration::from_secs(3600);
        })
        .await;
        let alice = app.register_and_login("alice").await;
        let (mut ws, _) = app.ws_join(&alice, "general").await;
        let opened = std::time::Instant::now();
        assert_eq!(ws_closed(&mut ws).await, 4401);
        let after = opened.elapsed();
        assert!(
            after < Duration::from_millis(2500),
            "closed after {after:?}"
        );
        // The socket's own deadline check recorded no activity.
        assert_eq!(app.me(&alice).await.status(), StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn activity_elsewhere_moves_the_sockets_deadline() {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let app = spawn_app_with(|c| {
            c.session.idle_timeout = Duration::from_secs(1);
            c.session.touch_interval = Duration::ZERO;
            c.session.prune_interval = Duration::from_secs(3600);
        })
        .await;
        let alice = app.register_and_login("alice").await;
        let (mut ws, _) = app.ws_join(&alice, "general").await;
        // Requests on the same session carry it twice past the deadline
        // the socket opened with; the socket stays open throughout.
        let opened = std::time::Instant::now();
        while opened.elapsed() < Duration::from_secs(2) {
            assert_eq!(app.me(&alice).await.status(), StatusCode::OK);
            match tokio::time::timeout(Duration::from_millis(300), ws.next()).await {
                Err(_) | Ok(Some(Ok(Message::Ping(_)))) => {}
                other => panic!("the socket ended while its session was in use: {other:?}"),
            }
        }
        // Left alone, it closes at the deadline the requests moved.
        let quiet = std::time::Instant::now();
        assert_eq!(ws_closed(&mut ws).await, 4401);
        let after = quiet.elapsed();
        assert!(
            after < Duration::from_millis(2500),
            "closed after {after:?}"
        );
    }

    async fn session_id(app: &TestApp, cookie: &str) -> String {
        let me: Value = app.me(cookie).await.json().await.unwrap();
        me["session"]["id"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn logout_closes_the_sessions_sockets_with_4401() {
        let app = spawn_app().await;
        let alice = app.register_and_login("alice").await;
        let other = cookie_of(&app.login("alice", PASSWORD).await);
        let (mut ws, _) = app.ws_join(&alice, "general").await;
        let (mut untouched, _) = app.ws_join(&other, "general").await;
        app.logout(&alice).await;
        assert_eq!(ws_closed(&mut ws).await, 4401);
        ws_send(
            &mut untouched,
            json!({"type": "message", "room": "general", "text": "still"}),
        )
        .await;
        assert_eq!(ws_recv(&mut untouched).await["text"], "still");
    }

    #[tokio::test]
    async fn revoking_one_session_closes_its_sockets() {
        let app = spawn_app().await;
        let alice = app.register_and_login("alice").await;
        let phone = cookie_of(&app.login("alice", PASSWORD).await);
        let (mut ws, _) = app.ws_join(&phone, "general").await;
        let id = session_id(&app, &phone).await;
        app.send(
            Method::DELETE,
            &format!("/api/auth/sessions/{id}"),
            &alice,
            None,
        )
        .await;
        assert_eq!(ws_closed(&mut ws).await, 4401);
    }

    #[tokio::test]
    async fn revoking_the_others_closes_their_sockets() {
        let app = spawn_app().await;
        let alice = app.register_and_login("alice").await;
        let phone = cookie_of(&app.login("alice", PASSWORD).await);
        let (mut ws, _) = app.ws_join(&phone, "general").await;
        app.send(Method::DELETE, "/api/auth/sessions", &alice, None)
            .await;
        assert_eq!(ws_closed(&mut ws).await, 4401);
    }

    #[tokio::test]
    async fn a_password_change_closes_every_socket_of_the_user() {
        let app = spawn_app().await;
        let alice = app.register_and_login("alice").await;
        let (mut ws, _) = app.ws_join(&alice, "general").await;
        let body = json!({"currentPassword": PASSWORD, "newPassword": "another long password"});
        let res = app
            .send(Method::POST, "/api/auth/password", &alice, Some(body))
            .await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(ws_closed(&mut ws).await, 4401);
    }

    #[tokio::test]
    async fn an_admin_revocation_closes_the_users_sockets() {
        let app = spawn_app().await;
        let (admin, _) = app.admin().await;
        let alice = app.register_and_login("alice").await;
        let id = app.id_of(&alice).await;
        let (mut ws, _) = app.ws_join(&alice, "general").await;
        app.send(
            Method::DELETE,
            &format!("/api/admin/users/{id}/sessions"),
            &admin,
            None,
        )
        .await;
        assert_eq!(ws_closed(&mut ws).await, 4401);
    }

    #[tokio::test]
    async fn removing_the_user_closes_their_sockets() {
        let app = spawn_app().await;
        let (admin, _) = app.admin().await;
        let alice = app.register_and_login("alice").await;
        let id = app.id_of(&alice).await;
        let (mut ws, _) = app.ws_join(&alice, "general").await;
        app.send(
            Method::DELETE,
            &format!("/api/admin/users/{id}"),
            &admin,
            None,
        )
        .await;
        assert_eq!(ws_closed(&mut ws).await, 4401);
    }

    #[tokio::test]
    async fn a_timed_out_session_is_closed_by_the_pruner() {
        let app = spawn_app_with(|c| {
            c.session.absolute_timeout = Duration::from_secs(1);
            c.session.prune_interval = Duration::from_secs(3600);
        })
        .await;
        let alice = app.register_and_login("alice").await;
        let (mut ws, _) = app.ws_join(&alice, "general").await;
        assert_eq!(ws_closed(&mut ws).await, 4401);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_never_reads_delays_no_one_and_is_cut_off() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let app = spawn_app_with(|c| {
        c.chat.max_messages_per_second = 100_000;
        c.chat.max_message_chars = 16_000;
    })
    .await;
    let (admin, _) = app.admin().await;
    let sleepy = app.register_and_login("sleepy").await;
    let busy = app.register_and_login("busy").await;
    // Joins, then never reads again.
    let (_stalled, _) = app.ws_join(&sleepy, "general").await;
    let (mut ws, _) = app.ws_join(&busy, "general").await;
    let text = "z".repeat(16_000);
    let frame = json!({"type": "message", "room": "general", "text": text}).to_string();
    for n in 0..1000 {
        ws.send(Message::text(frame.clone())).await.unwrap();
        let m = ws_recv(&mut ws).await;
        assert_eq!(m["type"], "message", "message {n}: {m}");
    }
    // 16 MB went to a reader that reads nothing: its queue filled and the
    // server let it go rather than buffer without bound.
    let mut open = 2;
    for _ in 0..100 {
        let stats: Value = app
            .get("/api/admin/stats", Some(&admin))
            .await
            .json()
            .await
            .unwrap();
        open = stats["wsConnections"].as_u64().unwrap();
        if open == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open, 1, "the stalled socket was dropped");
}

#[tokio::test]
async fn a_socket_that_never_answers_pings_is_dropped_and_a_live_one_kept() {
    use futures_util::StreamExt;
    let app = spawn_app_with(|c| c.chat.ping_interval = Duration::from_millis(200)).await;
    let alice = app.register_and_login("alice").await;
    // Never polled: it cannot answer the server's pings.
    let _silent = app.ws_connect(Some(&alice), None).await.unwrap();
    // Polled: tungstenite answers each ping with a pong as it reads.
    let mut live = app.ws_connect(Some(&alice), None).await.unwrap();
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = live.next().await {} });
    let mut open = 2;
    for _ in 0..50 {
        open = app.metric("sessiond_ws_connections").await;
        if open == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open, 1, "the silent socket was dropped");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        app.metric("sessiond_ws_connections").await,
        1,
        "the live one stays"
    );
    reader.abort();
}
