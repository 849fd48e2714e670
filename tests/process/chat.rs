//! The chat across process lifetimes: history survives a restart, and a
//! stop closes every socket with 1001.

use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

#[tokio::test]
async fn messages_survive_a_crash_once_broadcast() {
    let site = Site::new("");
    let server = site.start(&[]);
    server.register("alice").await;
    let cookie = server.login_cookie("alice").await;
    let mut ws = connect(&server, &cookie).await;
    say(&mut ws, json!({"type": "join", "room": "general"})).await;
    next_json(&mut ws).await;
    for text in ["one", "two"] {
        say(
            &mut ws,
            json!({"type": "message", "room": "general", "text": text}),
        )
        .await;
        assert_eq!(next_json(&mut ws).await["text"], text);
    }
    server.crash();
    let server = site.start(&[]);
    let mut ws = connect(&server, &cookie).await;
    say(&mut ws, json!({"type": "join", "room": "general"})).await;
    let joined = next_json(&mut ws).await;
    let texts: Vec<_> = joined["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].clone())
        .collect();
    assert_eq!(texts, ["one", "two"]);
}

#[tokio::test]
async fn sigterm_closes_every_socket_with_1001_and_exits_0() {
    let site = Site::new("");
    let server = site.start(&[("RUST_LOG", "sessiond=debug")]);
    server.register("alice").await;
    let cookie = server.login_cookie("alice").await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(connect(&server, &cookie).await);
    }
    let stopping = tokio::task::spawn_blocking(move || server.stop_with("-TERM"));
    for ws in &mut sockets {
        let code = loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(frame)))) => break u16::from(frame.code),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        };
        assert_eq!(code, 1001);
    }
    let (status, log) = stopping.await.unwrap();
    assert!(status.success(), "{log}");
    // Nothing outlived the stop holding the database: had something, the
    // seal would be skipped and sled's own drop would flush (and wait)
    // after "stopped" (issue 12's slow SIGTERM looked for this).
    assert!(!log.contains("database still in use at close"), "{log}");
    assert!(site.data_dir().join("db.sealed").exists());
}
