//! How the tasks of a multitask run share parameters, as the network it trains and the
//! penalty it adds: hard sharing trains the run's model (one backbone, a head per task);
//! soft sharing and cross-stitch train one column of it per task (Duong et al. 2015's
//! L2-tied columns; Misra et al. 2016's cross-stitch units).

use super::{Architecture, MultitaskError};
use crate::models::{ColumnsConfig, ModelConfig};

/// The network an architecture trains and the soft-sharing penalty, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedNetwork {
    /// The network to train.
    pub model: ModelConfig,
    /// Strength `lambda` of soft sharing's `lambda * sum ||W_A - W_B||^2`.
    pub soft_sharing: Option<f64>,
}

impl Architecture {
    /// The network this architecture trains from the run's model `column`, for tasks with
    /// `classes` classes each.
    pub fn network(
        &self,
        column: &ModelConfig,
        classes: Vec<usize>,
    ) -> Result<SharedNetwork, MultitaskError> {
        let (cross_stitch, stitch_self, soft_sharing) = match self {
            Architecture::Hard => {
                return Ok(SharedNetwork {
                    model: column.clone(),
                    soft_sharing: None,
                });
            }
            Architecture::Soft { lambda } => (false, 0.9, Some(*lambda)),
            Architecture::CrossStitch { stitch_self } => (true, *stitch_self, None),
        };
        let columns = ColumnsConfig {
            column: Box::new(column.clone()),
            classes,
            cross_stitch,
            stitch_self,
        };
        columns
            .validate()
            .map_err(|v| MultitaskError::Architecture(v.to_string()))?;
        Ok(SharedNetwork {
            model: ModelConfig::Columns(columns),
            soft_sharing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_sharing_keeps_the_model_and_the_others_make_columns() {
        let mlp = ModelConfig::default();
        let hard = Architecture::Hard.network(&mlp, vec![10, 10]).unwrap();
        assert_eq!(
            hard,
            SharedNetwork {
                model: mlp.clone(),
                soft_sharing: None
            }
        );
        let soft = Architecture::Soft { lambda: 0.5 }
            .network(&mlp, vec![10, 10])
            .unwrap();
        assert_eq!(soft.soft_sharing, Some(0.5));
        assert!(matches!(soft.model, ModelConfig::Columns(ref c) if !c.cross_stitch));
        let stitch = Architecture::CrossStitch { stitch_self: 0.8 }
            .network(&mlp, vec![10, 2])
            .unwrap();
        assert!(
            matches!(stitch.model, ModelConfig::Columns(ref c) if c.cross_stitch && c.classes == [10, 2])
        );
    }
}
