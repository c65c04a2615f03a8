//! What the trainer needs from a network: its config (stored in the checkpoint and compared on
//! load), a constructor, and its weights as a named state dict. Implemented for the score
//! networks (`ScoreNet`, reference layout incl. `sigmas`) and the noise-conditional classifier
//! (`WideResNet`), so both train, checkpoint and resume through the same code.

use burn::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sgm_nets::weights::{
    ParamEntry, StateDict, apply_module_state_dict, apply_state_dict, module_param_entries,
    module_state_dict, param_entries, state_dict,
};
use sgm_nets::{ModelConfig, ScoreNet, WideResNet, WideResNetConfig};

use crate::error::Result;

/// The config of a network the trainer handles.
pub trait NetConfig: Clone + PartialEq + std::fmt::Debug + Serialize + DeserializeOwned {
    /// Name written into checkpoints (`score network`, `classifier`), for messages.
    const KIND: &'static str;
    /// True when weights trained under `self` fit a network of `other`.
    fn same_weights(&self, other: &Self) -> bool {
        self == other
    }
}

impl NetConfig for ModelConfig {
    const KIND: &'static str = "score network";
    /// Dropout may differ: it is a training-time switch, not part of the weights.
    fn same_weights(&self, other: &Self) -> bool {
        let (mut a, mut b) = (self.clone(), other.clone());
        a.model.dropout = 0.0;
        b.model.dropout = 0.0;
        a == b
    }
}

impl NetConfig for WideResNetConfig {
    const KIND: &'static str = "classifier";
}

/// A network the trainer can build, checkpoint and restore.
pub trait TrainNet<B: Backend>: Module<B> + Sized {
    /// The knobs that fix the network's parameters.
    type Config: NetConfig;
    /// The knobs this network was built with.
    fn net_config(&self) -> Self::Config;
    /// A fresh network of `cfg`.
    fn build(cfg: &Self::Config, device: &B::Device) -> Result<Self>;
    /// Weights by key.
    fn weights(&self) -> StateDict;
    /// Parameters in registration order (the optimizer's order).
    fn entries(&self) -> Vec<ParamEntry>;
    /// Loads weights (every key present with its shape, none left over).
    fn load(self, sd: &StateDict) -> Result<Self>;
}

impl<B: Backend> TrainNet<B> for ScoreNet<B> {
    type Config = ModelConfig;
    fn net_config(&self) -> ModelConfig {
        self.config().clone()
    }
    fn build(cfg: &ModelConfig, device: &B::Device) -> Result<Self> {
        Ok(ScoreNet::new(cfg, device)?)
    }
    fn weights(&self) -> StateDict {
        state_dict(self)
    }
    fn entries(&self) -> Vec<ParamEntry> {
        param_entries(self)
    }
    fn load(self, sd: &StateDict) -> Result<Self> {
        Ok(apply_state_dict(self, sd)?)
    }
}

impl<B: Backend> TrainNet<B> for WideResNet<B> {
    type Config = WideResNetConfig;
    fn net_config(&self) -> WideResNetConfig {
        self.config().clone()
    }
    fn build(cfg: &WideResNetConfig, device: &B::Device) -> Result<Self> {
        Ok(WideResNet::new(cfg, device)?)
    }
    fn weights(&self) -> StateDict {
        module_state_dict(self)
    }
    fn entries(&self) -> Vec<ParamEntry> {
        module_param_entries(self)
    }
    fn load(self, sd: &StateDict) -> Result<Self> {
        Ok(apply_module_state_dict(self, sd)?)
    }
}
