//! The triggers the automation domain keeps: a cache written through to the
//! store, the task that matches every event against it, firing, and the
//! triggers API.

use std::sync::Arc;

use chrono::Utc;
use uuid::Uuid;

use super::*;
use crate::automation::Automation;
use crate::shared::blocking_kernel;

impl Automation {
    fn trigger_cache(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Trigger>> {
        match self.triggers.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn trigger_snapshot(&self) -> Vec<Trigger> {
        match self.triggers.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Loads the triggers and subscribes them to the event bus.
    pub(crate) async fn start_triggers(self: &Arc<Self>) -> Result<usize, KernelError> {
        let store = self.shared.store().clone();
        let loaded = store::blocking(move || list(&store)).await?;
        let count = loaded.len();
        *self.trigger_cache() = loaded;
        let mut rx = self.shared.events().subscribe();
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let event = match rx.recv().await {
                    Ok(e) => e,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(
                            missed = n,
                            "triggers fell behind the event bus; events missed"
                        );
                        continue;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                };
                let Some(kernel) = weak.upgrade() else { break };
                kernel.match_triggers(&event);
            }
        });
        Ok(count)
    }

    /// Claims every trigger that wants `event` (count and cooldown are
    /// updated under the lock, so one event fires a trigger once) and
    /// starts their fires.
    fn match_triggers(self: &Arc<Self>, event: &Event) {
        let now = self.shared.now();
        let claimed: Vec<Trigger> = {
            let mut cache = self.trigger_cache();
            cache
                .iter_mut()
                .filter(|t| t.wants(event, now))
                .map(|t| {
                    t.fire_count += 1;
                    t.last_fired_at = Some(now);
                    t.clone()
                })
                .collect()
        };
        for trigger in claimed {
            let kernel = self.clone();
            let prompt = render(&trigger.prompt_template, event);
            tokio::spawn(async move { kernel.fire_trigger(trigger, prompt).await });
        }
    }

    async fn fire_trigger(self: &Arc<Self>, trigger: Trigger, prompt: String) {
        let mut fire = TriggerFire {
            seq: 0,
            trigger_id: trigger.id,
            agent_id: trigger.target(),
            prompt: prompt.clone(),
            fired_at: trigger.last_fired_at.unwrap_or_else(Utc::now),
            finished_at: None,
            status: "running".into(),
            response: None,
            error: None,
        };
        let store = self.shared.store().clone();
        let (t, f) = (trigger.clone(), fire.clone());
        let begun = store::blocking(move || {
            let mut f = f;
            begin_fire(&store, &t, &mut f).map(|_| f)
        })
        .await;
        match begun {
            Ok(f) => fire = f,
            Err(e) => {
                tracing::error!(trigger_id = %trigger.id, error = %e, "cannot record a trigger fire; not firing");
                return;
            }
        }
        self.shared.events().publish(Event::TriggerFired {
            trigger_id: trigger.id.to_string(),
            agent_id: trigger.target().to_string(),
            at: fire.fired_at,
        });
        let new_session = trigger.session_mode == Some(SessionMode::New);
        let result = self.agent_turn(trigger.target(), prompt, new_session).await;
        fire.finished_at = Some(self.shared.now());
        match result {
            Ok(response) => {
                fire.status = "ok".into();
                if let Some(delivery) = &trigger.delivery {
                    let origin = format!("trigger:{}", trigger.id);
                    let sent = delivery
                        .send(&self.channels, trigger.target(), &response, &origin)
                        .await;
                    if let Err(e) = sent {
                        fire.status = "error".into();
                        fire.error =
                            Some(format!("the agent answered, but the delivery failed: {e}"));
                    }
                }
                fire.response = Some(response);
            }
            Err(error) => {
                fire.status = "error".into();
                fire.error = Some(error);
            }
        }
        let store = self.shared.store().clone();
        if let Err(e) = store::blocking(move || finish_fire(&store, &fire)).await {
            tracing::error!(trigger_id = %trigger.id, error = %e, "cannot record a trigger fire's result");
        }
    }

    /// Creates a trigger.
    pub async fn trigger_create(&self, input: TriggerInput) -> Result<Trigger, KernelError> {
        validate_template(&input.prompt_template)?;
        if let TriggerPattern::AgentSpawned { name_pattern } = &input.pattern
            && name_pattern.is_empty()
        {
            return Err(KernelError::Invalid(
                "name_pattern must not be empty".into(),
            ));
        }
        self.agents.get(input.agent_id).await?;
        if let Some(target) = input.target_agent_id {
            self.agents.get(target).await?;
        }
        let delivery = input.delivery.and_then(Delivery::normalized);
        if let Some(delivery) = &delivery {
            delivery.check(&self.channels)?;
        }
        let trigger = Trigger {
            id: Uuid::new_v4(),
            agent_id: input.agent_id,
            pattern: input.pattern,
            prompt_template: input.prompt_template,
            enabled: input.enabled.unwrap_or(true),
            fire_count: 0,
            max_fires: input.max_fires.unwrap_or(0),
            created_at: self.shared.now(),
            cooldown_secs: input.cooldown_secs,
            session_mode: input.session_mode,
            target_agent_id: input.target_agent_id,
            last_fired_at: None,
            delivery,
        };
        let store = self.shared.store().clone();
        let stored = trigger.clone();
        let event = AuditEvent::new("trigger_created", format!("trigger {}", trigger.id))
            .agent(trigger.agent_id);
        let entry = blocking_kernel(move || put(&store, &stored, Some(event), true)).await?;
        if let Some(entry) = entry {
            self.shared.events().publish(Event::Audit(entry));
        }
        self.trigger_cache().push(trigger.clone());
        Ok(trigger)
    }

    /// Every trigger, optionally of one agent.
    pub fn triggers(&self, agent: Option<Uuid>) -> Vec<Trigger> {
        self.trigger_snapshot()
            .into_iter()
            .filter(|t| agent.is_none_or(|a| a == t.agent_id))
            .collect()
    }

    /// One trigger, or `NotFound`.
    pub fn trigger(&self, id: Uuid) -> Result<Trigger, KernelError> {
        self.trigger_snapshot()
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| KernelError::NotFound(format!("trigger {id} not found")))
    }

    /// Changes the fields given; `null` clears an override.
    pub async fn trigger_patch(
        &self,
        id: Uuid,
        patch: TriggerPatch,
    ) -> Result<Trigger, KernelError> {
        let mut t = self.trigger(id)?;
        if let Some(template) = patch.prompt_template {
            validate_template(&template)?;
            t.prompt_template = template;
        }
        if let Some(pattern) = patch.pattern {
            t.pattern = pattern;
        }
        if let Some(enabled) = patch.enabled {
            t.enabled = enabled;
        }
        if let Some(max) = patch.max_fires {
            t.max_fires = max;
        }
        if let Some(cooldown) = patch.cooldown_secs {
            t.cooldown_secs = cooldown;
        }
        if let Some(mode) = patch.session_mode {
            t.session_mode = mode;
        }
        if let Some(target) = patch.target_agent_id {
            if let Some(target) = target {
                self.agents.get(target).await?;
            }
            t.target_agent_id = target;
        }
        if let Some(delivery) = patch.delivery {
            delivery.check(&self.channels)?;
            t.delivery = delivery.normalized();
        }
        // Counters may have moved since the read: keep the cache's.
        {
            let cache = self.trigger_cache();
            if let Some(current) = cache.iter().find(|c| c.id == id) {
                t.fire_count = current.fire_count;
                t.last_fired_at = current.last_fired_at;
            }
        }
        let store = self.shared.store().clone();
        let stored = t.clone();
        let event = AuditEvent::new("trigger_updated", format!("trigger {id}")).agent(t.agent_id);
        let entry = blocking_kernel(move || put(&store, &stored, Some(event), false)).await?;
        if let Some(entry) = entry {
            self.shared.events().publish(Event::Audit(entry));
        }
        let mut cache = self.trigger_cache();
        if let Some(slot) = cache.iter_mut().find(|c| c.id == id) {
            let (count, last) = (slot.fire_count, slot.last_fired_at);
            *slot = Trigger {
                fire_count: count,
                last_fired_at: last,
                ..t.clone()
            };
        }
        Ok(t)
    }

    /// Deletes a trigger; false when it did not exist.
    pub async fn trigger_delete(&self, id: Uuid) -> Result<bool, KernelError> {
        let store = self.shared.store().clone();
        let entry = store::blocking(move || remove(&store, id)).await?;
        self.trigger_cache().retain(|t| t.id != id);
        Ok(match entry {
            Some(entry) => {
                self.shared.events().publish(Event::Audit(entry));
                true
            }
            None => false,
        })
    }

    /// A trigger's recorded fires, newest first.
    pub async fn trigger_fires(
        &self,
        id: Uuid,
        limit: usize,
    ) -> Result<Vec<TriggerFire>, KernelError> {
        self.trigger(id)?;
        let store = self.shared.store().clone();
        Ok(store::blocking(move || fires(&store, id, limit)).await?)
    }
}
