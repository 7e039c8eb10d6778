use std::sync::Arc;

use super::catalog::{LocalModelStatus, ModelCatalog};
use super::clock::{self, SharedClock};
use super::config::Config;
use super::db::Db;
use super::imports::Imports;
use super::limits::WriteLimits;
use super::passwords::{PasswordError, Passwords};
use super::pricing::PriceTable;
use super::throttle::SignInThrottle;
use super::turns::TurnHub;

/// Why the state could not be made.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the shipped price table does not parse: {0}")]
    Prices(#[from] toml::de::Error),
    #[error("the password hashing threads could not start: {0}")]
    Passwords(#[from] PasswordError),
}

/// Everything a request needs; cheap to clone. Provided to SSR and server functions as context.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub catalog: Arc<ModelCatalog>,
    pub prices: Arc<PriceTable>,
    pub turns: Arc<TurnHub>,
    pub sign_in_throttle: Arc<SignInThrottle>,
    /// What budgets count months by (tests move it).
    pub clock: SharedClock,
    /// Each person's changes per minute through the API.
    pub writes: Arc<WriteLimits>,
    /// The threads passwords are hashed on.
    pub passwords: Arc<Passwords>,
    /// Who is importing now (one import per person at a time).
    pub imports: Arc<Imports>,
}

impl AppState {
    /// Builds the model catalog (asking OpenAI-compatible servers for their models) and starts
    /// the turn hub. Fails only if the shipped price table does not parse (a build defect that
    /// tests catch) or no thread can be started.
    pub async fn new(
        db: Db,
        config: Config,
        local_model: LocalModelStatus,
    ) -> Result<Self, StateError> {
        let prices = PriceTable::shipped_with(&config.price_overrides)?;
        let catalog = ModelCatalog::build(&config, local_model, &prices).await;
        Self::from_parts(db, config, catalog, prices)
    }

    /// The state from a catalog built by the caller (tests add providers of their own).
    pub fn from_parts(
        db: Db,
        config: Config,
        catalog: ModelCatalog,
        prices: PriceTable,
    ) -> Result<Self, StateError> {
        Self::with_clock(db, config, catalog, prices, clock::system())
    }

    /// [`Self::from_parts`] with a clock of the caller's (tests cross month boundaries).
    pub fn with_clock(
        db: Db,
        config: Config,
        catalog: ModelCatalog,
        prices: PriceTable,
        clock: SharedClock,
    ) -> Result<Self, StateError> {
        let passwords = Arc::new(Passwords::start()?);
        let catalog = Arc::new(catalog);
        let prices = Arc::new(prices);
        let turns = Arc::new(TurnHub::start(
            db.clone(),
            catalog.clone(),
            prices.clone(),
            &config,
            clock.clone(),
        ));
        let writes = Arc::new(WriteLimits::new(&config.limits));
        Ok(Self {
            db,
            config: Arc::new(config),
            catalog,
            prices,
            turns,
            sign_in_throttle: Arc::default(),
            clock,
            writes,
            passwords,
            imports: Arc::default(),
        })
    }

    /// `2026-12`: the month budgets count now.
    pub fn month(&self) -> String {
        clock::month_of(self.clock.now_ms())
    }
}
