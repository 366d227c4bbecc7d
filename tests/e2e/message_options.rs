//! LibreFang's message fields that mean something here (issue 14):
//! ephemeral and incognito turns, the sender's identity; and the requests
//! LibreFang's clients make without a body or with extreme numbers.

use serde_json::json;
use talon_test_llm::{Reply, TestLlm};

use crate::conversations::{manifest, sent_messages};
use crate::harness::{Daemon, assert_error, json};

#[tokio::test]
async fn ephemeral_and_incognito_turns_leave_the_session_as_it_was() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start().await;
    let agent = daemon
        .spawn_manifest(manifest("asker", &llm, "gpt-4o-mini", &[]))
        .await;
    llm.push(Reply::text("first answer"));
    let first = daemon.message(&agent, "remember the number 7").await;
    assert_eq!(first.status(), 200);

    // Ephemeral: only the system prompt and the question reach the model.
    llm.push(Reply::text("a side answer"));
    let side = daemon
        .post(
            &format!("/api/agents/{agent}/message"),
            json!({"message": "by the way?", "ephemeral": true, "sender_id": "u-42",
                   "sender_name": "Ada", "channel_type": "api"}),
        )
        .await;
    assert_eq!(json(side).await["response"], "a side answer");
    let request = llm.last_request().unwrap();
    let sent = sent_messages(&request);
    assert_eq!(sent.len(), 2, "system prompt and the question: {sent:?}");
    assert_eq!(sent[1].1, "by the way?");
    assert_eq!(request.body["user"], "u-42", "the sender is the end user");

    // Incognito: the history is read, the turn is not stored.
    llm.push(Reply::text("seven"));
    let incognito = daemon
        .post(
            &format!("/api/agents/{agent}/message"),
            json!({"message": "which number?", "incognito": true}),
        )
        .await;
    assert_eq!(incognito.status(), 200);
    assert_eq!(sent_messages(&llm.last_request().unwrap()).len(), 4);

    let session = json(daemon.get(&format!("/api/agents/{agent}/session")).await).await;
    assert_eq!(session["message_count"], 2, "only the first turn is stored");

    // The side turn is recorded with its sender.
    let traces = json(daemon.get(&format!("/api/agents/{agent}/traces")).await).await;
    let side_trace = traces["traces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["sender"]["id"] == "u-42")
        .unwrap_or_else(|| panic!("a trace with the sender: {traces}"));
    assert_eq!(side_trace["sender"]["name"], "Ada");
    assert_eq!(side_trace["sender"]["channel_type"], "api");
    assert_eq!(side_trace["ephemeral"], true);

    // LibreFang's other fields are accepted; a field it does not have is not.
    llm.push(Reply::text("ok"));
    let all = daemon
        .post(
            &format!("/api/agents/{agent}/message"),
            json!({"message": "hi", "thinking": false, "show_thinking": true, "is_group": false,
                   "was_mentioned": false, "group_participants": []}),
        )
        .await;
    assert_eq!(all.status(), 200);
    let unknown = daemon
        .post(
            &format!("/api/agents/{agent}/message"),
            json!({"message": "hi", "colour": "red"}),
        )
        .await;
    assert_error(unknown, 400, "colour").await;
}

#[tokio::test]
async fn bodyless_calls_and_extreme_numbers_get_clear_answers() {
    let daemon = Daemon::start().await;
    let cleanup = daemon
        .request(reqwest::Method::POST, "/api/sessions/cleanup")
        .send()
        .await
        .unwrap();
    assert_eq!(cleanup.status(), 200);
    assert_eq!(json(cleanup).await["deleted"], 0);
    // `null` is the document's optional body too, so it means the same.
    let null = daemon.post("/api/sessions/cleanup", json!(null)).await;
    assert_eq!(null.status(), 200);
    assert_eq!(json(null).await["deleted"], 0);
    // Not read as the fields by position.
    let array = daemon
        .post("/api/sessions/cleanup", json!([null, null]))
        .await;
    assert_error(array, 400, "expected a JSON object").await;
    let huge = daemon
        .post(
            "/api/sessions/cleanup",
            json!({"older_than_days": 100_000_000u32}),
        )
        .await;
    assert_eq!(
        huge.status(),
        200,
        "a date beyond the calendar is not a panic"
    );
    let negative = daemon
        .post("/api/sessions/cleanup", json!({"older_than_days": -1}))
        .await;
    assert_error(negative, 400, "invalid body").await;

    let sign = daemon
        .request(reqwest::Method::POST, "/api/plugins/nothing/sign")
        .send()
        .await
        .unwrap();
    assert_error(sign, 400, "talon plugin keygen").await;

    let ready = daemon.get("/api/ready").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(json(ready).await["status"], "ready");

    let agent = daemon.spawn_agent("no-upgrade").await;
    // A WebSocket route called as plain HTTP answers JSON, like every route.
    let plain = daemon.get(&format!("/api/agents/{agent}/ws")).await;
    assert_error(plain, 400, "upgrade").await;
}
