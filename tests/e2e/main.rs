//! End-to-end tests: the real `talon` binary on a free port with a temporary
//! home, driven over HTTP. See `harness.rs`.

mod harness;

mod a2a;
mod agent_logs;
mod agent_settings;
mod agents;
mod approvals;
mod approvals_restart;
mod attachments;
mod audit;
mod automation;
mod bundled;
mod channel_delivery;
mod channel_kit;
mod channel_streaming;
mod channels;
mod cli;
mod cli_daily;
mod comms;
mod compat;
mod compat_fuzz;
mod config;
mod connections;
mod conventions;
mod conversations;
mod dashboard;
mod delegation;
mod diskfull;
mod durability;
mod first_hour;
mod goals;
mod grants;
mod hands;
mod message_options;
mod openai_tools;
mod plugin_authoring;
mod plugin_lifecycle;
mod plugins;
mod provider_faults;
mod providers;
mod sandbox;
mod scheduler;
mod storage;
mod system;
mod tasks;
mod triggers;
mod validation;
mod webhooks;
mod websocket;
// The real IRC server and raw IRC clients the runtime's channel tests use.
#[allow(dead_code)]
#[path = "../../host/runtime/tests/common/irc.rs"]
mod ngircd;

mod mcp;
// The real XMPP and mail servers the runtime's channel tests use.
mod channels_email;
mod channels_matrix;
mod channels_telegram;
mod channels_tls;
mod channels_xmpp;
mod hands_digest;
#[allow(dead_code)]
#[path = "../../host/runtime/tests/common/mail.rs"]
mod mail;
#[allow(dead_code)]
#[path = "../../host/runtime/tests/common/prosody.rs"]
mod prosody;
mod retention;
// The test CA of the runtime's TLS tests.
#[allow(dead_code)]
#[path = "../../host/runtime/tests/common/tls.rs"]
mod test_ca;
