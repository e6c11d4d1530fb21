//! The `generate` stage kind (being written).

use anyhow::{bail, Result};

use super::{OutputRole, ParamSpec, Params, StageContext, StageKind};

pub struct Generate;

impl StageKind for Generate {
    fn name(&self) -> &'static str {
        "generate"
    }
    fn version(&self) -> u32 {
        1
    }
    fn inputs(&self) -> &'static [&'static str] {
        &[]
    }
    fn outputs(&self) -> &'static [OutputRole] {
        &[]
    }
    fn params(&self) -> Vec<ParamSpec> {
        Vec::new()
    }
    fn check_params(&self, _params: &Params) -> Result<()> {
        Ok(())
    }
    fn run(&self, _ctx: &StageContext) -> Result<()> {
        bail!("not written yet")
    }
}
