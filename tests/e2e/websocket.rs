//! WebSocket chat end to end: streamed turns, commands and pings over
//! `GET /api/agents/{id}/ws`.

use std::time::Duration;

use serde_json::json;
use talon_test_llm::{Reply, TestLlm};

use crate::conversations::{manifest, uuid_like};
use crate::harness::Daemon;

#[tokio::test]
async fn websocket_chat_and_commands() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Ws;

    let llm = TestLlm::start().await;
    let daemon = Daemon::start().await;
    let agent = daemon
        .spawn_manifest(manifest("socket", &llm, "test-model", &[]))
        .await;
    let url = format!(
        "{}/api/agents/{agent}/ws",
        daemon.base_url().replace("http", "ws")
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("connect");

    async fn next(
        socket: &mut (impl StreamExt<Item = Result<Ws, tokio_tungstenite::tungstenite::Error>> + Unpin),
    ) -> serde_json::Value {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(20), socket.next())
                .await
                .expect("a frame in time")
                .expect("open")
                .expect("frame");
            if let Ws::Text(text) = frame {
                return serde_json::from_str(&text).expect("JSON frame");
            }
        }
    }
    async fn until(
        socket: &mut (impl StreamExt<Item = Result<Ws, tokio_tungstenite::tungstenite::Error>> + Unpin),
        kind: &str,
    ) -> Vec<serde_json::Value> {
        let mut seen = Vec::new();
        loop {
            let frame = next(socket).await;
            let done = frame["type"] == kind;
            seen.push(frame);
            if done {
                return seen;
            }
        }
    }

    assert_eq!(next(&mut socket).await["type"], "connected");
    assert_eq!(next(&mut socket).await["type"], "agents_updated");

    llm.push(Reply::text("hello over ws").in_chunks(2));
    socket
        .send(Ws::text(
            json!({ "type": "message", "content": "hi", "message_id": "m1" }).to_string(),
        ))
        .await
        .unwrap();
    let frames = until(&mut socket, "response").await;
    assert_eq!(frames[0]["type"], "typing");
    let text: String = frames
        .iter()
        .filter(|f| f["type"] == "text_delta")
        .map(|f| f["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, "hello over ws");
    let response = frames.last().unwrap();
    assert_eq!(response["content"], "hello over ws");
    assert_eq!(response["message_id"], "m1");

    socket.send(Ws::text("{\"type\": \"ping\"}")).await.unwrap();
    assert_eq!(
        until(&mut socket, "pong").await.last().unwrap()["type"],
        "pong"
    );
    socket.send(Ws::text("/new")).await.unwrap();
    let result = until(&mut socket, "command_result").await;
    assert!(result.last().unwrap()["session_id"].is_string());
    socket.send(Ws::text("/bogus")).await.unwrap();
    let error = until(&mut socket, "error").await;
    assert!(
        error.last().unwrap()["content"]
            .as_str()
            .unwrap()
            .contains("unknown command")
    );
    // Plain text is a message too; a missing agent is refused before the upgrade.
    llm.push(Reply::text("plain"));
    socket.send(Ws::text("just text")).await.unwrap();
    assert_eq!(
        until(&mut socket, "response").await.last().unwrap()["content"],
        "plain"
    );
    let missing = format!(
        "{}/api/agents/{}/ws",
        daemon.base_url().replace("http", "ws"),
        uuid_like()
    );
    assert!(tokio_tungstenite::connect_async(&missing).await.is_err());
}
