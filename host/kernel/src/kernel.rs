//! [`Kernel`]: the one object the API talks to.
//!
//! The kernel puts the domains together at boot and hands each the ones it
//! may use. Whatever belongs to one domain is reached through that domain's
//! accessor (`kernel.agents().spawn(..)`); the few operations that span
//! domains (killing an agent ends its turns too) and the configuration are
//! methods here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use uuid::Uuid;

use crate::KernelError;
use crate::a2a::A2a;
use crate::agents::Agents;
use crate::agents::templates::Profile;
use crate::approvals::Approvals;
use crate::automation::Automation;
use crate::channels::Channels;
use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config, ReloadPlan};
use crate::conversation::Conversations;
use crate::events::EventBus;
use crate::hands::Hands;
use crate::home::Home;
use crate::mcp::McpClients;
use crate::plugins::Plugins;
use crate::providers::Providers;
use crate::shared::Shared;
use crate::store::audit::{self, AuditEntry, AuditEvent, Verification};
use crate::store::{self, Store};
use crate::webhooks::Webhooks;

mod a2a_tasks;
pub mod comms;

pub use a2a_tasks::A2aMessage;

/// Settings given on the command line that win over `config.toml` for this run only.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Replaces `api_listen`.
    pub api_listen: Option<String>,
    /// Replaces `allow_remote_without_key` when true.
    pub allow_remote_without_key: bool,
}

/// The running kernel: the foundation and the domains built on it.
pub struct Kernel {
    shared: Arc<Shared>,
    config_path: PathBuf,
    overrides: Overrides,
    started: Instant,
    agents: Arc<Agents>,
    plugins: Arc<Plugins>,
    providers: Arc<Providers>,
    approvals: Arc<Approvals>,
    conversations: Arc<Conversations>,
    automation: Arc<Automation>,
    webhooks: Arc<Webhooks>,
    a2a: Arc<A2a>,

    channels: Arc<Channels>,

    mcp: Arc<McpClients>,

    hands: Arc<Hands>,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("home", self.shared.home())
            .finish_non_exhaustive()
    }
}

impl Kernel {
    /// Opens the data directory: creates it, writes the default config on first
    /// start, loads the config, opens and migrates the database.
    pub fn boot(
        home: Home,
        config_path: Option<PathBuf>,
        overrides: Overrides,
    ) -> Result<Self, KernelError> {
        Self::boot_with_clock(home, config_path, overrides, Arc::new(SystemClock))
    }

    /// Like [`Kernel::boot`], with every timestamp taken from `clock`.
    pub fn boot_with_clock(
        home: Home,
        config_path: Option<PathBuf>,
        overrides: Overrides,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, KernelError> {
        home.ensure().map_err(|e| {
            KernelError::Invalid(format!("cannot create {}: {e}", home.root().display()))
        })?;
        let config_path = config_path.unwrap_or_else(|| home.config_file());
        let config = Config::load_or_init(&config_path)?;
        let config = apply_overrides(config, &overrides)?;
        let options = crate::store::StoreOptions {
            cache_bytes: usize::try_from(config.storage.cache_mib << 20).unwrap_or(usize::MAX),
            reserve_bytes: config.storage.disk_reserve_mib << 20,
        };
        let store = Store::open_with(&home.database_file(), clock, options)?;
        let shared = Arc::new(Shared::new(home, store, config));

        // Removing an agent removes its conversations in the same transaction.
        let agents = Arc::new(Agents::new(
            shared.clone(),
            vec![crate::conversation::remove_agent_in],
        ));
        let plugins = Arc::new(Plugins::new(shared.clone(), agents.clone())?);
        let providers = Arc::new(Providers::new(shared.clone())?);
        let approvals = Arc::new(Approvals::new(
            shared.clone(),
            agents.clone(),
            providers.clone(),
        )?);
        let a2a = Arc::new(A2a::new(shared.clone())?);

        let mcp = Arc::new(McpClients::new(shared.clone(), providers.clone()));
        let conversations = Arc::new(Conversations::new(
            shared.clone(),
            agents.clone(),
            plugins.clone(),
            providers.clone(),
            approvals.clone(),
            a2a.clone(),
            mcp.clone(),
        ));
        agents.set_choices(choices_source(&plugins, &providers));
        let channels = Arc::new(Channels::new(
            shared.clone(),
            agents.clone(),
            plugins.clone(),
            providers.clone(),
            conversations.clone(),
        ));
        let automation = Arc::new(Automation::new(
            shared.clone(),
            agents.clone(),
            conversations.clone(),
            channels.clone(),
        ));
        let webhooks = Arc::new(Webhooks::new(shared.clone())?);
        let hands = Arc::new(Hands::new(
            shared.clone(),
            agents.clone(),
            plugins.clone(),
            conversations.clone(),
            automation.clone(),
        ));
        Ok(Self {
            shared,
            config_path,
            overrides,
            started: Instant::now(),
            agents,
            plugins,
            providers,
            approvals,
            conversations,
            automation,
            webhooks,
            a2a,

            channels,

            mcp,

            hands,
        })
    }

    /// Agents: records, manifests, templates, workspaces, uploads, memory.
    pub fn agents(&self) -> &Arc<Agents> {
        &self.agents
    }

    /// Installed plugins and skills, and their tools.
    pub fn plugins(&self) -> &Arc<Plugins> {
        &self.plugins
    }

    /// Model providers, their catalog, keys and circuit breakers.
    pub fn providers(&self) -> &Arc<Providers> {
        &self.providers
    }

    /// Tool calls waiting for an operator, and the TOTP second factor.
    pub fn approvals(&self) -> &Arc<Approvals> {
        &self.approvals
    }

    /// MCP servers agents use.
    pub fn mcp(&self) -> &Arc<McpClients> {
        &self.mcp
    }

    /// Sessions, turns and the agent loop.
    pub fn conversations(&self) -> &Arc<Conversations> {
        &self.conversations
    }

    /// Cron jobs, schedules, triggers, workflows, goals and the task queue.
    pub fn automation(&self) -> &Arc<Automation> {
        &self.automation
    }

    /// Outbound webhook subscriptions, their delivery queue and dead letters.
    pub fn webhooks(&self) -> &Arc<Webhooks> {
        &self.webhooks
    }

    /// Remote A2A agents and the A2A tasks sent to this daemon's agents.
    pub fn a2a(&self) -> &Arc<A2a> {
        &self.a2a
    }

    /// Hands: activated hand plugins, their agents and their ticks.
    pub fn hands(&self) -> &Arc<Hands> {
        &self.hands
    }

    /// Configured channels: bindings to agents, the durable inbox and outbox.
    pub fn channels(&self) -> &Arc<Channels> {
        &self.channels
    }

    /// The data directory.
    pub fn home(&self) -> &Home {
        self.shared.home()
    }

    /// The database.
    pub fn store(&self) -> &Store {
        self.shared.store()
    }

    /// The event bus.
    pub fn events(&self) -> &EventBus {
        self.shared.events()
    }

    /// The configuration file in use.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.shared.config()
    }

    /// Seconds since boot.
    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Appends an event to the audit trail and publishes the entry.
    pub async fn audit(&self, event: AuditEvent) -> Result<AuditEntry, KernelError> {
        self.shared.audit(event).await
    }

    /// Appends an event to the audit trail without a sync of its own (it
    /// is durable with the next durable commit): for frequent events such
    /// as `/mcp` tool calls. See `Shared::audit_unsynced`.
    pub async fn audit_unsynced(&self, event: AuditEvent) -> Result<AuditEntry, KernelError> {
        self.shared.audit_unsynced(event).await
    }

    /// The newest `limit` audit entries (newest first) and the chain's length.
    pub async fn audit_recent(&self, limit: usize) -> Result<(Vec<AuditEntry>, u64), KernelError> {
        let store = self.store().clone();
        Ok(store::blocking(move || audit::recent(&store, limit)).await?)
    }

    /// Walks and checks the whole audit chain.
    pub async fn audit_verify(&self) -> Result<Verification, KernelError> {
        let store = self.store().clone();
        Ok(store::blocking(move || audit::verify(&store)).await?)
    }

    /// Checkpoints the audit chain at its head and removes the entries
    /// before the cut (`store::audit_checkpoint`).
    pub async fn audit_checkpoint(&self) -> Result<store::audit_checkpoint::Pruned, KernelError> {
        let store = self.store().clone();
        let done =
            store::blocking(move || Ok(store::audit_checkpoint::checkpoint_and_prune(&store)))
                .await?;
        done.map_err(|e| match e {
            store::audit_checkpoint::PruneError::Store(e) => KernelError::Store(e),
            broken => KernelError::Conflict(broken.to_string()),
        })
    }

    /// Removes an agent with its memory, conversations and workspace, and
    /// ends its running turns; false when it did not exist.
    pub async fn kill_agent(&self, id: Uuid) -> Result<bool, KernelError> {
        let existed = self.agents.remove(id).await?;
        if existed {
            self.conversations.forget_agent(id);
        }
        Ok(existed)
    }

    /// The tool profiles (named tool sets for `capabilities.tools`); `full`
    /// lists every tool the loaded plugins offer.
    pub fn profiles(&self) -> Vec<Profile> {
        let installed = self.plugins.tools().into_iter().map(|t| t.name).collect();
        self.agents.profiles(installed)
    }

    /// Re-reads the config file; an invalid file is refused and the old config kept.
    pub async fn reload_config(&self) -> Result<ReloadPlan, KernelError> {
        let path = self.config_path.clone();
        let loaded = tokio::task::spawn_blocking(move || Config::load(&path))
            .await
            .map_err(|e| KernelError::Invalid(e.to_string()))??;
        let new = apply_overrides(loaded, &self.overrides)?;
        let plan = self.replace_config(new);
        self.apply_plugin_config(&plan).await?;
        if !plan.changed.is_empty() {
            self.audit(AuditEvent::new(
                "config_reloaded",
                format!("changed: {}", plan.changed.join(", ")),
            ))
            .await?;
        }
        Ok(plan)
    }

    /// Sets one dotted key in the config file and applies it.
    pub async fn set_config(
        &self,
        key: String,
        value: serde_json::Value,
    ) -> Result<ReloadPlan, KernelError> {
        self.change_config(key, config::Change::Set(value)).await
    }

    /// Changes one dotted key in the config file (sets it, or adds items to
    /// or removes items from the list it holds) and applies it.
    pub async fn change_config(
        &self,
        key: String,
        change: config::Change,
    ) -> Result<ReloadPlan, KernelError> {
        let path = self.config_path.clone();
        let audited_key = key.clone();
        let verb = match &change {
            config::Change::Set(_) => "set",
            config::Change::Add(_) => "added to",
            config::Change::Remove(_) => "removed from",
        };
        let written =
            tokio::task::spawn_blocking(move || config::change_value(&path, &key, change))
                .await
                .map_err(|e| KernelError::Invalid(e.to_string()))??;
        let new = apply_overrides(written, &self.overrides)?;
        let plan = self.replace_config(new);
        self.apply_plugin_config(&plan).await?;
        // The key is recorded, never the value: it may be a secret.
        self.audit(AuditEvent::new(
            "config_changed",
            format!("{verb} {audited_key}"),
        ))
        .await?;
        Ok(plan)
    }

    /// Writes (or, with `None`, removes) the table `[<section>.<name>]` in
    /// the config file and applies the new config.
    pub async fn set_config_table(
        &self,
        section: &str,
        name: &str,
        value: Option<serde_json::Value>,
    ) -> Result<ReloadPlan, KernelError> {
        let path = self.config_path.clone();
        let (section, name) = (section.to_string(), name.to_string());
        let audited = format!(
            "{} {section}.{name}",
            if value.is_some() { "set" } else { "removed" }
        );
        let written = tokio::task::spawn_blocking(move || {
            config::set_table(&path, &section, &name, value.as_ref())
        })
        .await
        .map_err(|e| KernelError::Invalid(e.to_string()))??;
        let new = apply_overrides(written, &self.overrides)?;
        let plan = self.replace_config(new);
        // The table is recorded, never its values: they may hold secrets.
        self.audit(AuditEvent::new("config_changed", audited))
            .await?;
        Ok(plan)
    }

    /// Which bundled plugins are wanted is applied as soon as it changes.
    async fn apply_plugin_config(&self, plan: &ReloadPlan) -> Result<(), KernelError> {
        if plan
            .changed
            .iter()
            .any(|k| k == "plugins.bundled" || k == "plugins.bundled_exclude")
        {
            self.plugins.apply_bundled_config().await?;
        }
        Ok(())
    }

    fn replace_config(&self, new: Config) -> ReloadPlan {
        let plan = self.shared.replace_config(new);
        // Plugin ceilings apply to the next call; trust changes apply at the
        // next load or reload of each plugin.
        self.plugins.apply_ceilings();
        plan
    }
}

/// What manifests may name, read from the plugins and providers when asked;
/// held weakly so the agents domain does not keep the domains above it alive.
fn choices_source(
    plugins: &Arc<Plugins>,
    providers: &Arc<Providers>,
) -> crate::agents::ChoicesSource {
    let (plugins, providers) = (Arc::downgrade(plugins), Arc::downgrade(providers));
    Box::new(move || {
        let mut choices = crate::agents::Choices::default();
        if let Some(providers) = providers.upgrade() {
            choices.providers = providers
                .llm()
                .providers()
                .into_iter()
                .map(|p| p.name)
                .collect();
        }
        if let Some(plugins) = plugins.upgrade() {
            for plugin in plugins.list() {
                // A skill offers tools too, besides its instructions.
                if plugin.kind == talon_runtime::Kind::Skill {
                    choices.skills.insert(plugin.name);
                }
                choices.tools.extend(plugin.tools);
            }
        }
        choices
    })
}

fn apply_overrides(mut config: Config, overrides: &Overrides) -> Result<Config, KernelError> {
    if let Some(listen) = &overrides.api_listen {
        config.api_listen = listen.clone();
    }
    if overrides.allow_remote_without_key {
        config.allow_remote_without_key = true;
    }
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::clock::ManualClock;

    const MANIFEST: &str =
        "name = \"clocked\"\n[model]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\n";

    #[tokio::test]
    async fn every_timestamp_comes_from_the_kernels_clock() {
        let dir = tempfile::tempdir().unwrap();
        let start = Utc.with_ymd_and_hms(2031, 3, 4, 5, 6, 7).unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let kernel = Kernel::boot_with_clock(
            Home::new(dir.path()),
            None,
            Overrides::default(),
            clock.clone(),
        )
        .unwrap();

        let agent = kernel.agents().spawn(MANIFEST.into()).await.unwrap();
        assert_eq!(agent.created_at, start);
        let (entries, _) = kernel.audit_recent(1).await.unwrap();
        assert_eq!(entries[0].event_type, "agent_spawned");
        assert_eq!(entries[0].timestamp, start);

        clock.advance(std::time::Duration::from_secs(3600));
        let later = start + chrono::Duration::hours(1);
        let session = kernel
            .conversations()
            .create_session(agent.id, Some("later".into()), false)
            .await
            .unwrap();
        assert_eq!(session.created_at, later);
        let stopped = kernel
            .agents()
            .set_state(agent.id, crate::agents::AgentState::Stopped)
            .await
            .unwrap();
        assert_eq!(stopped.last_active, later);
    }
}

// `[plugins] tls_ca_file` is read at boot: tested here, where the kernel is
// built (the plugins domain sits below the kernel).
#[cfg(test)]
mod tls_ca_tests {
    use crate::home::Home;
    use crate::kernel::{Kernel, Overrides};

    /// Boots with `[plugins] tls_ca_file` naming `ca`; the error, if any.
    fn boot_with_ca(dir: &std::path::Path, ca: &std::path::Path) -> Option<String> {
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!("[plugins]\ntls_ca_file = {:?}\n", ca.display().to_string()),
        )
        .expect("write config");
        Kernel::boot(
            Home::new(dir.join("home")),
            Some(config),
            Overrides::default(),
        )
        .err()
        .map(|e| e.to_string())
    }

    #[test]
    fn a_ca_file_that_is_missing_or_not_a_certificate_stops_the_boot() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("missing.pem");
        let error = boot_with_ca(dir.path(), &missing).expect("refused");
        assert!(error.contains("plugins.tls_ca_file"), "{error}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").expect("write");
        let error = boot_with_ca(dir.path(), &garbage).expect("refused");
        assert!(
            error.contains("plugins.tls_ca_file") && error.contains("no usable CA certificate"),
            "{error}"
        );
    }
}
