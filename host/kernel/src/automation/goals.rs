//! Goals: a tree of objectives, optionally owned by an agent.
//!
//! Deleting a goal deletes its whole subtree in one transaction. A goal's
//! parent must exist and may not be the goal itself or one of its
//! descendants, so the tree never gets a cycle.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::KernelError;
use crate::store::tables::GOALS;
use crate::store::{self, Store, StoreError};

const TABLE: &str = "goals.v1";

/// Longest title, in bytes.
pub const MAX_TITLE_BYTES: usize = 500;
/// Longest description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 16 * 1024;

/// Where a goal stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum GoalStatus {
    /// Not started.
    #[default]
    Pending,
    /// Being worked on.
    InProgress,
    /// Done.
    Completed,
    /// Given up.
    Cancelled,
}

/// A stored goal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Goal {
    /// Its id.
    pub id: Uuid,
    /// What to achieve.
    pub title: String,
    /// More about it.
    pub description: String,
    /// Where it stands.
    pub status: GoalStatus,
    /// 0-100.
    pub progress: u8,
    /// The agent pursuing it.
    pub agent_id: Option<Uuid>,
    /// The goal it is part of.
    pub parent_id: Option<Uuid>,
    /// When it is due.
    pub due_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Body of creating (`title` required) or updating a goal; on update omitted
/// fields stay and `null` clears `agent_id`, `parent_id` or `due_at`.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GoalInput {
    /// What to achieve.
    #[cfg_attr(feature = "openapi", schema(pattern = "\\S", max_length = 500))]
    pub title: Option<String>,
    /// More about it.
    #[cfg_attr(feature = "openapi", schema(max_length = 16384))]
    pub description: Option<String>,
    /// Where it stands.
    pub status: Option<GoalStatus>,
    /// 0-100.
    #[cfg_attr(feature = "openapi", schema(maximum = 100))]
    pub progress: Option<u8>,
    /// The agent pursuing it.
    #[serde(default, deserialize_with = "nullable")]
    pub agent_id: Option<Option<Uuid>>,
    /// The parent goal.
    #[serde(default, deserialize_with = "nullable")]
    pub parent_id: Option<Option<Uuid>>,
    /// When it is due.
    #[serde(default, deserialize_with = "nullable")]
    pub due_at: Option<Option<DateTime<Utc>>>,
}

/// A built-in template: a goal and its sub-goals.
#[derive(Debug, Clone, Serialize)]
pub struct GoalTemplate {
    /// Template id.
    pub id: &'static str,
    /// The top goal's title.
    pub name: &'static str,
    /// What it is for.
    pub description: &'static str,
    /// Sub-goal titles.
    pub subgoals: &'static [&'static str],
}

/// The templates `GET /api/goals/templates` lists.
pub const TEMPLATES: &[GoalTemplate] = &[
    GoalTemplate {
        id: "research",
        name: "Research a topic",
        description: "Collect sources, summarise them and write conclusions.",
        subgoals: &[
            "Collect sources",
            "Summarise each source",
            "Write conclusions",
        ],
    },
    GoalTemplate {
        id: "launch",
        name: "Ship a release",
        description: "From frozen scope to announced release.",
        subgoals: &[
            "Freeze scope",
            "Test the release candidate",
            "Write release notes",
            "Announce",
        ],
    },
    GoalTemplate {
        id: "inbox-zero",
        name: "Reach inbox zero",
        description: "Triage, answer and archive everything pending.",
        subgoals: &["Triage", "Answer what needs an answer", "Archive the rest"],
    },
];

fn all(store: &Store) -> Result<Vec<Goal>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(GOALS)?;
    let mut out: Vec<Goal> = Vec::new();
    for item in table.iter()? {
        let (_, v) = item?;
        out.push(store::decode(TABLE, v.value())?);
    }
    out.sort_by_key(|g| (g.created_at, g.id));
    Ok(out)
}

/// Ids of `root` and everything below it.
fn subtree(goals: &[Goal], root: Uuid) -> Vec<Uuid> {
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            goals
                .iter()
                .filter(|g| g.parent_id == Some(parent))
                .map(|g| g.id),
        );
        i += 1;
    }
    out
}

fn check_text(title: &str, description: &str, progress: u8) -> Result<(), KernelError> {
    if title.trim().is_empty() || title.len() > MAX_TITLE_BYTES {
        return Err(KernelError::Invalid(format!(
            "title must be 1-{MAX_TITLE_BYTES} bytes"
        )));
    }
    if description.len() > MAX_DESCRIPTION_BYTES {
        return Err(KernelError::Invalid(format!(
            "description is longer than {MAX_DESCRIPTION_BYTES} bytes"
        )));
    }
    if progress > 100 {
        return Err(KernelError::Invalid("progress must be 0-100".into()));
    }
    Ok(())
}

/// Creates, updates or deletes in one write transaction, checking parents.
fn write(
    store: &Store,
    goal: Option<&Goal>,
    delete: Option<Uuid>,
) -> Result<Vec<Uuid>, KernelError> {
    let goals = all(store)?;
    let tx = store.db()?.begin_write()?;
    let removed = {
        let mut table = tx.open_table(GOALS).map_err(StoreError::from)?;
        if let Some(goal) = goal {
            if let Some(parent) = goal.parent_id {
                if !goals.iter().any(|g| g.id == parent) {
                    return Err(KernelError::NotFound(format!(
                        "parent goal {parent} not found"
                    )));
                }
                if subtree(&goals, goal.id).contains(&parent) {
                    return Err(KernelError::Invalid(
                        "parent_id would make the goal its own ancestor".into(),
                    ));
                }
            }
            table
                .insert(
                    goal.id.to_string().as_str(),
                    store::encode(TABLE, goal)?.as_slice(),
                )
                .map_err(StoreError::from)?;
        }
        let mut removed = Vec::new();
        if let Some(root) = delete
            && goals.iter().any(|g| g.id == root)
        {
            removed = subtree(&goals, root);
            for id in &removed {
                table
                    .remove(id.to_string().as_str())
                    .map_err(StoreError::from)?;
            }
        }
        removed
    };
    tx.commit().map_err(StoreError::from)?;
    Ok(removed)
}

mod kernel_side {
    use super::*;
    use crate::automation::Automation;
    use crate::shared::blocking_kernel;

    impl Automation {
        /// Creates a goal.
        pub async fn goal_create(&self, input: GoalInput) -> Result<Goal, KernelError> {
            let title = input
                .title
                .ok_or_else(|| KernelError::Invalid("title is required".into()))?;
            let now = self.shared.now();
            let goal = Goal {
                id: Uuid::new_v4(),
                title,
                description: input.description.unwrap_or_default(),
                status: input.status.unwrap_or_default(),
                progress: input.progress.unwrap_or(0),
                agent_id: input.agent_id.flatten(),
                parent_id: input.parent_id.flatten(),
                due_at: input.due_at.flatten(),
                created_at: now,
                updated_at: now,
            };
            check_text(&goal.title, &goal.description, goal.progress)?;
            if let Some(agent) = goal.agent_id {
                self.agents.get(agent).await?;
            }
            let store = self.shared.store().clone();
            let stored = goal.clone();
            blocking_kernel(move || write(&store, Some(&stored), None)).await?;
            Ok(goal)
        }

        /// Every goal, oldest first.
        pub async fn goals(&self) -> Result<Vec<Goal>, KernelError> {
            let store = self.shared.store().clone();
            Ok(store::blocking(move || all(&store)).await?)
        }

        /// One goal, or `NotFound`.
        pub async fn goal(&self, id: Uuid) -> Result<Goal, KernelError> {
            self.goals()
                .await?
                .into_iter()
                .find(|g| g.id == id)
                .ok_or_else(|| KernelError::NotFound(format!("goal {id} not found")))
        }

        /// The direct children of a goal.
        pub async fn goal_children(&self, id: Uuid) -> Result<Vec<Goal>, KernelError> {
            let goals = self.goals().await?;
            if !goals.iter().any(|g| g.id == id) {
                return Err(KernelError::NotFound(format!("goal {id} not found")));
            }
            Ok(goals
                .into_iter()
                .filter(|g| g.parent_id == Some(id))
                .collect())
        }

        /// Changes the fields given.
        pub async fn goal_update(&self, id: Uuid, input: GoalInput) -> Result<Goal, KernelError> {
            let mut goal = self.goal(id).await?;
            if let Some(t) = input.title {
                goal.title = t;
            }
            if let Some(d) = input.description {
                goal.description = d;
            }
            if let Some(s) = input.status {
                goal.status = s;
                if s == GoalStatus::Completed {
                    goal.progress = 100;
                }
            }
            if let Some(p) = input.progress {
                goal.progress = p;
            }
            if let Some(a) = input.agent_id {
                if let Some(agent) = a {
                    self.agents.get(agent).await?;
                }
                goal.agent_id = a;
            }
            if let Some(p) = input.parent_id {
                goal.parent_id = p;
            }
            if let Some(d) = input.due_at {
                goal.due_at = d;
            }
            goal.updated_at = self.shared.now();
            check_text(&goal.title, &goal.description, goal.progress)?;
            let store = self.shared.store().clone();
            let stored = goal.clone();
            blocking_kernel(move || write(&store, Some(&stored), None)).await?;
            Ok(goal)
        }

        /// Deletes a goal and all its descendants; the ids removed (empty when it did not exist).
        pub async fn goal_delete(&self, id: Uuid) -> Result<Vec<Uuid>, KernelError> {
            let store = self.shared.store().clone();
            blocking_kernel(move || write(&store, None, Some(id))).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn goal(id: u128, parent: Option<u128>) -> Goal {
        Goal {
            id: Uuid::from_u128(id),
            title: "t".into(),
            description: String::new(),
            status: GoalStatus::Pending,
            progress: 0,
            agent_id: None,
            parent_id: parent.map(Uuid::from_u128),
            due_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn subtrees_cascade_and_cycles_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        for g in [
            goal(1, None),
            goal(2, Some(1)),
            goal(3, Some(2)),
            goal(4, None),
        ] {
            write(&store, Some(&g), None).unwrap();
        }
        assert!(matches!(
            write(&store, Some(&goal(1, Some(3))), None),
            Err(KernelError::Invalid(_))
        ));
        assert!(matches!(
            write(&store, Some(&goal(5, Some(99))), None),
            Err(KernelError::NotFound(_))
        ));
        let mut removed = write(&store, None, Some(Uuid::from_u128(1))).unwrap();
        removed.sort();
        assert_eq!(
            removed,
            vec![Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3)]
        );
        let left: Vec<Uuid> = all(&store).unwrap().into_iter().map(|g| g.id).collect();
        assert_eq!(left, vec![Uuid::from_u128(4)]);
    }
}
