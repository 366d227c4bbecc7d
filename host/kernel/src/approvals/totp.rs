//! The TOTP second factor for approvals of the guarded risk class.
//!
//! The secret lives in `secrets.toml` (0600, through the providers domain);
//! the last accepted time step in `approval_meta.v1`, so a code is accepted
//! once: a replay, or an older code of the skew window, is refused.

use serde::Serialize;
use totp_rs::{Builder, Secret, Totp};

use super::{Approvals, records};
use crate::KernelError;
use crate::config::SecondFactor;
use crate::providers::TotpSecret;
use crate::shared::blocking_kernel;
use crate::store::audit::AuditEvent;

/// What `POST /api/approvals/totp/setup` answers: the secret, shown once.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TotpEnrollment {
    /// The shared secret, base32, for manual entry.
    pub secret: String,
    /// The `otpauth://` URI authenticator apps read.
    pub otpauth_uri: String,
}

/// Where TOTP enrollment stands.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TotpStatus {
    /// A secret exists.
    pub enrolled: bool,
    /// A code confirmed it.
    pub confirmed: bool,
    /// Approvals of the guarded class need a code now.
    pub enforced: bool,
    /// Talon issues no recovery codes: revoking needs a current code, or
    /// removing `approval_totp` from `secrets.toml` by hand.
    pub remaining_recovery_codes: u32,
}

fn totp(secret: &str) -> Result<Totp, KernelError> {
    let secret = Secret::try_from_base32(secret)
        .map_err(|e| KernelError::Invalid(format!("the stored TOTP secret is unreadable: {e}")))?;
    Builder::new()
        .with_secret(secret)
        .with_issuer(Some("Talon"))
        .with_account_name("approvals")
        .build()
        .map_err(|e| KernelError::Invalid(format!("the stored TOTP secret is unusable: {e}")))
}

impl Approvals {
    /// Generates a new secret (replacing an unconfirmed one); it guards
    /// nothing until confirmed. A confirmed enrollment must be revoked first.
    pub async fn totp_setup(&self) -> Result<TotpEnrollment, KernelError> {
        if let Some(existing) = self.providers.approval_totp().await?
            && existing.confirmed
        {
            return Err(KernelError::Conflict(
                "TOTP is already enrolled and confirmed; DELETE /api/approvals/totp with a current code first".into(),
            ));
        }
        let secret = Secret::generate().to_base32();
        let otpauth_uri = totp(&secret)?
            .to_url()
            .map_err(|e| KernelError::Invalid(e.to_string()))?;
        self.providers
            .set_approval_totp(Some(TotpSecret {
                secret: secret.clone(),
                confirmed: false,
            }))
            .await?;
        self.shared
            .audit(AuditEvent::new(
                "totp_setup",
                "approval TOTP secret generated",
            ))
            .await?;
        Ok(TotpEnrollment {
            secret,
            otpauth_uri,
        })
    }

    /// Confirms enrollment with a current code.
    pub async fn totp_confirm(&self, code: &str) -> Result<TotpStatus, KernelError> {
        let mut enrolled = self.providers.approval_totp().await?.ok_or_else(|| {
            KernelError::Conflict(
                "TOTP is not enrolled; POST /api/approvals/totp/setup first".into(),
            )
        })?;
        self.accept_code(&enrolled.secret, code).await?;
        enrolled.confirmed = true;
        self.providers.set_approval_totp(Some(enrolled)).await?;
        self.shared
            .audit(AuditEvent::new(
                "totp_confirmed",
                "approval TOTP enrollment confirmed",
            ))
            .await?;
        self.totp_status().await
    }

    /// Where enrollment stands.
    pub async fn totp_status(&self) -> Result<TotpStatus, KernelError> {
        let enrolled = self.providers.approval_totp().await?;
        let confirmed = enrolled.as_ref().is_some_and(|t| t.confirmed);
        Ok(TotpStatus {
            enrolled: enrolled.is_some(),
            confirmed,
            enforced: confirmed
                && self.shared.config().approvals.second_factor == SecondFactor::Totp,
            remaining_recovery_codes: 0,
        })
    }

    /// Removes the enrollment; needs a current code.
    pub async fn totp_revoke(&self, code: &str) -> Result<(), KernelError> {
        let enrolled = self
            .providers
            .approval_totp()
            .await?
            .ok_or_else(|| KernelError::Conflict("TOTP is not enrolled".into()))?;
        self.accept_code(&enrolled.secret, code).await?;
        self.providers.set_approval_totp(None).await?;
        self.shared
            .audit(AuditEvent::new(
                "totp_revoked",
                "approval TOTP enrollment removed",
            ))
            .await?;
        Ok(())
    }

    /// Checks an approval's code: the step it matched, to be recorded with
    /// the decision (so a replay is refused in the same transaction).
    pub(super) async fn check_totp_for_approval(
        &self,
        code: Option<&str>,
    ) -> Result<Option<u64>, KernelError> {
        let enrolled = self.providers.approval_totp().await?;
        let Some(enrolled) = enrolled.filter(|t| t.confirmed) else {
            return Err(KernelError::Forbidden(
                "this approval needs a TOTP code, and TOTP is not enrolled; enroll with POST /api/approvals/totp/setup and /confirm".into(),
            ));
        };
        let code = code.ok_or_else(|| {
            KernelError::Invalid(
                "this approval needs a TOTP code: send {\"totp_code\": \"123456\"}".into(),
            )
        })?;
        Ok(Some(self.step_of(&enrolled.secret, code)?))
    }

    /// The time step `code` matches now, or 403.
    fn step_of(&self, secret: &str, code: &str) -> Result<u64, KernelError> {
        let now = u64::try_from(self.shared.now().timestamp()).unwrap_or_default();
        let valid = code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit());
        valid
            .then(|| totp(secret))
            .transpose()?
            .and_then(|t| t.check(code, now))
            .ok_or_else(|| KernelError::Forbidden("wrong TOTP code".into()))
    }

    /// Checks a code and records its step as used.
    async fn accept_code(&self, secret: &str, code: &str) -> Result<(), KernelError> {
        let step = self.step_of(secret, code)?;
        let store = self.shared.store().clone();
        blocking_kernel(move || records::use_totp_step(&store, step)).await
    }
}
