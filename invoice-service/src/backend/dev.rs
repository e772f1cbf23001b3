//! `dev`: a built-in backend that signs real BOLT11 invoices (regtest) with a local node key,
//! keeps their preimages in memory, and settles them through [`DevBackend::pay`], which the
//! service exposes as `POST /v1/dev/pay` only when `dev` is the backend. For the demo and
//! tests: it moves no money.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bitcoin::hashes::{Hash, sha256};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use l402_core::{PaymentHash, Preimage};
use lightning_invoice::{Bolt11Invoice, Currency, InvoiceBuilder, PaymentSecret};

use crate::config::common::{ConfigError, Env, err, section};

use super::{
    BackendError, Built, InvoiceLookup, InvoiceRequest, Kind, LightningBackend, NodeConfig,
    NodeInvoice,
};

/// Invoices remembered at most; the oldest expired ones go first.
const MAX_REMEMBERED: usize = 200_000;

struct Entry {
    preimage: Preimage,
    paid: bool,
    expires_at: u64,
}

/// The dev signer.
pub struct DevBackend {
    secp: Secp256k1<bitcoin::secp256k1::All>,
    key: SecretKey,
    invoices: Mutex<HashMap<[u8; 32], Entry>>,
}

/// Why a dev payment failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DevPayError {
    /// Not a BOLT11 invoice.
    #[error("not a BOLT11 invoice")]
    BadInvoice,
    /// Not made by this backend (or forgotten).
    #[error("invoice unknown to this dev backend")]
    UnknownInvoice,
    /// Paid before.
    #[error("invoice already paid")]
    AlreadyPaid,
    /// Past its expiry.
    #[error("invoice expired")]
    Expired,
}

fn random32() -> Result<[u8; 32], BackendError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b)
        .map_err(|e| BackendError::Unreachable(format!("no randomness: {e}")))?;
    Ok(b)
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl DevBackend {
    /// A signer with `node_key`, or a random one.
    pub fn new(node_key: Option<[u8; 32]>) -> anyhow::Result<Self> {
        let bytes = match node_key {
            Some(k) => k,
            None => random32().map_err(|e| anyhow::anyhow!("{e}"))?,
        };
        Ok(DevBackend {
            secp: Secp256k1::new(),
            key: SecretKey::from_slice(&bytes)?,
            invoices: Mutex::new(HashMap::new()),
        })
    }

    /// Settles an invoice this backend made and returns its preimage, once.
    pub fn pay(&self, bolt11: &str) -> Result<Preimage, DevPayError> {
        let inv = Bolt11Invoice::from_str(bolt11.trim()).map_err(|_| DevPayError::BadInvoice)?;
        let hash: [u8; 32] = *AsRef::<[u8; 32]>::as_ref(inv.payment_hash());
        let mut map = self
            .invoices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = map.get_mut(&hash).ok_or(DevPayError::UnknownInvoice)?;
        if entry.paid {
            return Err(DevPayError::AlreadyPaid);
        }
        if now().as_secs() >= entry.expires_at {
            return Err(DevPayError::Expired);
        }
        entry.paid = true;
        Ok(entry.preimage.clone())
    }

    fn remember(&self, hash: [u8; 32], entry: Entry) {
        let mut map = self
            .invoices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_REMEMBERED {
            let t = now().as_secs();
            map.retain(|_, e| e.expires_at > t);
        }
        if map.len() < MAX_REMEMBERED {
            map.insert(hash, entry);
        }
    }
}

#[async_trait]
impl LightningBackend for DevBackend {
    fn name(&self) -> &'static str {
        "dev"
    }

    async fn create_invoice(&self, req: &InvoiceRequest) -> Result<NodeInvoice, BackendError> {
        let preimage = Preimage::from_bytes(random32()?);
        let hash = preimage.payment_hash();
        let created = now();
        let expiry = Duration::from_secs(u64::from(req.expiry_secs));
        let invoice = InvoiceBuilder::new(Currency::Regtest)
            .description(req.memo.clone())
            .payment_hash(sha256::Hash::from_byte_array(hash.0))
            .payment_secret(PaymentSecret(random32()?))
            .duration_since_epoch(created)
            .min_final_cltv_expiry_delta(144)
            .amount_milli_satoshis(req.amount_msat)
            .expiry_time(expiry)
            .build_signed(|m| self.secp.sign_ecdsa_recoverable(m, &self.key))
            .map_err(|e| BackendError::BadResponse(format!("cannot build invoice: {e}")))?;
        self.remember(
            hash.0,
            Entry {
                preimage,
                paid: false,
                expires_at: (created + expiry).as_secs(),
            },
        );
        Ok(NodeInvoice {
            bolt11: invoice.to_string(),
            payment_hash: PaymentHash(hash.0),
        })
    }

    async fn check(&self) -> Result<(), BackendError> {
        Ok(())
    }

    async fn lookup_invoice(&self, hash: &PaymentHash) -> Result<InvoiceLookup, BackendError> {
        let map = self
            .invoices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(match map.get(&hash.0) {
            Some(e) if e.paid => InvoiceLookup::Settled(e.preimage.clone()),
            Some(e) if now().as_secs() < e.expires_at => InvoiceLookup::Open,
            _ => InvoiceLookup::Gone,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn signs_real_regtest_invoices_and_pays_each_once() {
        let dev = DevBackend::new(Some([7; 32])).unwrap();
        let req = InvoiceRequest {
            amount_msat: 21_000,
            memo: "m".into(),
            expiry_secs: 600,
        };
        let inv = dev.create_invoice(&req).await.unwrap();
        assert!(inv.bolt11.starts_with("lnbcrt210n1"), "{}", inv.bolt11);
        let checked =
            super::super::check_invoice(&inv.bolt11, Some(&inv.payment_hash), 21_000).unwrap();
        assert!(checked.expires_at > now().as_secs());
        let preimage = dev.pay(&inv.bolt11).unwrap();
        assert_eq!(preimage.payment_hash(), inv.payment_hash);
        assert_eq!(dev.pay(&inv.bolt11).unwrap_err(), DevPayError::AlreadyPaid);
        assert_eq!(
            dev.pay("lnbc1nonsense").unwrap_err(),
            DevPayError::BadInvoice
        );
        let other = DevBackend::new(None)
            .unwrap()
            .create_invoice(&req)
            .await
            .unwrap();
        assert_eq!(
            dev.pay(&other.bolt11).unwrap_err(),
            DevPayError::UnknownInvoice
        );
    }
}

/// `kind = "dev"`.
pub const KIND: Kind = Kind { name: "dev", parse };

#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    node_key_hex: Option<String>,
}

/// `[backend.dev]` (optional).
#[derive(Clone, Default)]
pub struct DevConfig {
    /// The node key; random when absent.
    pub node_key: Option<[u8; 32]>,
}

impl std::fmt::Debug for DevConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dev")
    }
}

fn parse(
    value: Option<toml::Value>,
    _env: &dyn Env,
) -> Result<std::sync::Arc<dyn NodeConfig>, ConfigError> {
    let d: Section = section("dev", value)?.unwrap_or_default();
    let node_key = d
        .node_key_hex
        .map(|h| {
            hex::decode(&h)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| err("backend.dev.node_key_hex", "expected 64 hex digits"))
        })
        .transpose()?;
    Ok(std::sync::Arc::new(DevConfig { node_key }))
}

impl NodeConfig for DevConfig {
    fn name(&self) -> &'static str {
        "dev"
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn build(&self, _timeout: Duration) -> anyhow::Result<Built> {
        let dev = std::sync::Arc::new(DevBackend::new(self.node_key)?);
        Ok((dev.clone(), Some(dev)))
    }

    fn is_dev(&self) -> bool {
        true
    }
}
