//! One internal interface over every version of the `hand` world, so the
//! supervisor (`hand.rs`) drives a hand the same way whichever version it
//! was built against (the Zed-style adapter of `wit/README.md`).
//!
//! The runtime's representation is 0.2.0's: [`HandInfo`], [`HandError`],
//! [`Metric`]. A 0.1.0 hand is converted into it:
//!
//! - it has no `describe`: its name is the manifest's, its display name,
//!   agent role and tick interval come from the manifest's `[hand]` table,
//!   and its settings schema from its own `settings-schema`;
//! - its errors are plain strings: `activate`'s is taken as refusing the
//!   settings ([`HandError::InvalidSettings`]; the settings are the only
//!   thing `activate` receives, so activating again with the same ones
//!   cannot help), `tick`'s as [`HandError::Failed`] (the next tick runs as
//!   usual).

use wasmtime::Store;
use wasmtime::component::InstancePre;

use crate::bindings::v0_1_0_hand as v1;
use crate::bindings::v0_2_0_hand as v2;
use crate::host::CallState;
use crate::live::{CallFuture, LivePre};
use crate::manifest::{HAND_WIT_VERSION, Manifest};

pub use crate::bindings::v0_2_0_hand::exports::talon::plugin::hand_lifecycle::{
    HandError, HandInfo, Metric,
};

/// A hand component linked against the world of its manifest's `wit`.
pub(crate) enum HandPre {
    /// `talon:plugin@0.2.0`, which describes itself.
    V0_2(v2::HandPre<CallState>),
    /// `talon:plugin@0.1.0`, described by its manifest.
    V0_1(v1::HandPre<CallState>),
}

/// The exports of one live hand instance.
pub(crate) enum HandWorld {
    /// `talon:plugin@0.2.0`.
    V0_2(v2::Hand),
    /// `talon:plugin@0.1.0`.
    V0_1(v1::Hand),
}

impl HandPre {
    /// Checks that `pre` exports the `hand` world of version `wit` (the
    /// manifest's, already validated).
    pub(crate) fn new(wit: &str, pre: InstancePre<CallState>) -> wasmtime::Result<Self> {
        if wit == HAND_WIT_VERSION {
            Ok(Self::V0_2(v2::HandPre::new(pre)?))
        } else {
            Ok(Self::V0_1(v1::HandPre::new(pre)?))
        }
    }
}

impl LivePre for HandPre {
    type World = HandWorld;

    fn engine(&self) -> &wasmtime::Engine {
        match self {
            Self::V0_2(pre) => pre.engine(),
            Self::V0_1(pre) => pre.engine(),
        }
    }

    fn instantiate<'s>(&'s self, store: &'s mut Store<CallState>) -> CallFuture<'s, HandWorld> {
        Box::pin(async move {
            Ok(match self {
                Self::V0_2(pre) => HandWorld::V0_2(pre.instantiate_async(store).await?),
                Self::V0_1(pre) => HandWorld::V0_1(pre.instantiate_async(store).await?),
            })
        })
    }
}

impl HandWorld {
    /// What the hand is: asked of a 0.2.0 hand; for a 0.1.0 hand, its
    /// settings schema asked of it and the rest read from `manifest`.
    pub(crate) async fn describe(
        &self,
        store: &mut Store<CallState>,
        manifest: &Manifest,
    ) -> wasmtime::Result<HandInfo> {
        match self {
            Self::V0_2(hand) => {
                hand.talon_plugin_hand_lifecycle()
                    .call_describe(store)
                    .await
            }
            Self::V0_1(hand) => {
                let settings_schema = hand
                    .talon_plugin_hand_lifecycle()
                    .call_settings_schema(store)
                    .await?;
                // The manifest was validated: a 0.1.0 hand has its table.
                // Without it the empty role and zero interval are refused
                // by the caller's checks rather than guessed here.
                let section = manifest.hand.as_ref();
                Ok(HandInfo {
                    name: manifest.name.clone(),
                    display_name: section
                        .and_then(|h| h.display_name.clone())
                        .unwrap_or_else(|| manifest.name.clone()),
                    settings_schema,
                    agent_role: section.map(|h| h.role.clone()).unwrap_or_default(),
                    tick_interval_ms: section.map_or(0, |h| h.interval_secs.saturating_mul(1000)),
                })
            }
        }
    }

    /// Starts the hand with its settings (JSON text).
    pub(crate) async fn activate(
        &self,
        store: &mut Store<CallState>,
        settings: &str,
    ) -> wasmtime::Result<Result<(), HandError>> {
        match self {
            Self::V0_2(hand) => {
                hand.talon_plugin_hand_lifecycle()
                    .call_activate(store, settings)
                    .await
            }
            Self::V0_1(hand) => Ok(hand
                .talon_plugin_hand_lifecycle()
                .call_activate(store, settings)
                .await?
                .map_err(HandError::InvalidSettings)),
        }
    }

    /// One unit of work.
    pub(crate) async fn tick(
        &self,
        store: &mut Store<CallState>,
    ) -> wasmtime::Result<Result<(), HandError>> {
        match self {
            Self::V0_2(hand) => hand.talon_plugin_hand_lifecycle().call_tick(store).await,
            Self::V0_1(hand) => Ok(hand
                .talon_plugin_hand_lifecycle()
                .call_tick(store)
                .await?
                .map_err(HandError::Failed)),
        }
    }

    /// The hand's figures.
    pub(crate) async fn metrics(
        &self,
        store: &mut Store<CallState>,
    ) -> wasmtime::Result<Vec<Metric>> {
        match self {
            Self::V0_2(hand) => hand.talon_plugin_hand_lifecycle().call_metrics(store).await,
            Self::V0_1(hand) => Ok(hand
                .talon_plugin_hand_lifecycle()
                .call_metrics(store)
                .await?
                .into_iter()
                .map(|m| Metric {
                    label: m.label,
                    value: m.value,
                })
                .collect()),
        }
    }

    /// Stops the hand; it may save its state first.
    pub(crate) async fn deactivate(&self, store: &mut Store<CallState>) -> wasmtime::Result<()> {
        match self {
            Self::V0_2(hand) => {
                hand.talon_plugin_hand_lifecycle()
                    .call_deactivate(store)
                    .await
            }
            Self::V0_1(hand) => {
                hand.talon_plugin_hand_lifecycle()
                    .call_deactivate(store)
                    .await
            }
        }
    }
}
