//! Custom models (`custom_models.v1`) and base-URL overrides
//! (`provider_urls.v1`): the providers domain's store functions.

use redb::{ReadableDatabase, ReadableTable};
use talon_llm::ModelInfo;

use crate::store::tables::{CUSTOM_MODELS, PROVIDER_URLS};
use crate::store::{self, Store, StoreError};

pub(super) const CUSTOM_MODELS_TABLE: &str = "custom_models.v1";

/// Every custom model.
pub(super) fn list_custom_models(store: &Store) -> Result<Vec<ModelInfo>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(CUSTOM_MODELS)?;
    let mut models = Vec::new();
    for entry in table.iter()? {
        let (_, value) = entry?;
        models.push(store::decode(CUSTOM_MODELS_TABLE, value.value())?);
    }
    Ok(models)
}

/// Every base-URL override, by provider.
pub(super) fn list_provider_urls(store: &Store) -> Result<Vec<(String, String)>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(PROVIDER_URLS)?;
    let mut urls = Vec::new();
    for entry in table.iter()? {
        let (provider, url) = entry?;
        urls.push((provider.value().to_string(), url.value().to_string()));
    }
    Ok(urls)
}

/// Stores a custom model (replacing one of the same id).
pub(super) fn insert_custom_model(store: &Store, model: &ModelInfo) -> Result<(), StoreError> {
    let bytes = store::encode(CUSTOM_MODELS_TABLE, model)?;
    let tx = store.db()?.begin_write()?;
    tx.open_table(CUSTOM_MODELS)?
        .insert(model.id.as_str(), bytes.as_slice())?;
    tx.commit()?;
    Ok(())
}

/// Removes a custom model; the model when it existed.
pub(super) fn remove_custom_model(
    store: &Store,
    id: &str,
) -> Result<Option<ModelInfo>, StoreError> {
    let tx = store.db()?.begin_write()?;
    let removed = tx
        .open_table(CUSTOM_MODELS)?
        .remove(id)?
        .map(|v| store::decode(CUSTOM_MODELS_TABLE, v.value()))
        .transpose()?;
    tx.commit()?;
    Ok(removed)
}

/// Sets (`Some`) or clears (`None`) a provider's base-URL override.
pub(super) fn set_provider_url(
    store: &Store,
    provider: &str,
    url: Option<&str>,
) -> Result<(), StoreError> {
    let tx = store.db()?.begin_write()?;
    {
        let mut table = tx.open_table(PROVIDER_URLS)?;
        match url {
            Some(url) => table.insert(provider, url)?,
            None => table.remove(provider)?,
        };
    }
    tx.commit()?;
    Ok(())
}
