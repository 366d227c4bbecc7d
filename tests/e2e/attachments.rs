//! Attachments end to end: a PDF's text reaches the model; a broken one
//! becomes a note.

use serde_json::json;
use talon_test_llm::{Reply, TestLlm};

use crate::conversations::{manifest, say_ok, sent_messages};
use crate::harness::{Daemon, json};

/// A minimal valid one-page PDF, written by hand, whose page shows `sentence`.
fn pdf_with(sentence: &str) -> Vec<u8> {
    let content = format!("BT /F1 12 Tf 72 720 Td ({sentence}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
         /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
            .to_string(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(b"xref\n0 6\n0000000000 65535 f \n");
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size 6 /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n").as_bytes(),
    );
    out
}

async fn upload(daemon: &Daemon, agent: &str, name: &str, mime: &str, bytes: Vec<u8>) -> String {
    let response = daemon
        .request(
            reqwest::Method::POST,
            &format!("/api/agents/{agent}/upload"),
        )
        .header("content-type", mime)
        .header("x-filename", name)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "upload of {name}");
    json(response).await["file_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The text of the last user message the model was sent.
fn last_user_text(llm: &TestLlm) -> String {
    let request = llm.last_request().expect("the model was called");
    sent_messages(&request)
        .into_iter()
        .rev()
        .find(|(role, _)| role == "user")
        .map(|(_, text)| text)
        .expect("a user message")
}

#[tokio::test]
async fn pdf_attachments_reach_the_model_as_text() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start().await;
    let agent = daemon
        .spawn_manifest(manifest("reader", &llm, "gpt-4o-mini", &[]))
        .await;

    let sentence = "The vault code is written on page one.";
    let file_id = upload(
        &daemon,
        &agent,
        "memo.pdf",
        "application/pdf",
        pdf_with(sentence),
    )
    .await;
    llm.push(Reply::text("I read it."));
    let response = daemon
        .post(
            &format!("/api/agents/{agent}/message"),
            json!({ "message": "What does the memo say?", "attachments": [{ "file_id": file_id }] }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let sent = last_user_text(&llm);
    assert!(sent.contains("[Attached PDF: memo.pdf]"), "{sent}");
    assert!(sent.contains(sentence), "{sent}");
    assert!(sent.contains("What does the memo say?"), "{sent}");

    // Garbage named and typed as a PDF: the message still goes through, and the
    // model is told the attachment could not be read, so it can say so.
    let garbage = upload(
        &daemon,
        &agent,
        "broken.pdf",
        "application/pdf",
        b"%PDF-1.7 this is not really a PDF \x00\xff\xfe".to_vec(),
    )
    .await;
    llm.push(Reply::text("That file is broken."));
    let response = daemon
        .post(
            &format!("/api/agents/{agent}/message"),
            json!({ "message": "And this one?", "attachments": [{ "file_id": garbage }] }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let sent = last_user_text(&llm);
    assert!(sent.contains("[Attached PDF: broken.pdf]"), "{sent}");
    assert!(sent.contains("could not be read"), "{sent}");
    // And the daemon is no worse for it.
    llm.push(Reply::text("still here"));
    assert_eq!(
        say_ok(&daemon, &agent, "ping").await["response"],
        "still here"
    );
}
