//! Choosing the device a run trains on: `cpu` (Burn's flex backend, always built), or
//! `cuda[:N]` / `wgpu` when mentor is built with the `cuda` / `wgpu` feature.

use burn::module::Module;
use burn::tensor::Device;

/// A device name that this build cannot serve.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DeviceError {
    /// The name is not a device mentor knows.
    #[error("unknown device {0:?}: expected cpu, cuda, cuda:N or wgpu")]
    Unknown(String),
    /// The backend exists but this binary was built without it.
    #[error("device {name:?} needs mentor built with `--features {feature}`")]
    NotBuilt {
        /// The requested device.
        name: String,
        /// The Cargo feature that provides it.
        feature: &'static str,
    },
}

/// The device `module`'s parameters live on (the CPU for a module without parameters).
pub fn module_device<M: Module>(module: &M) -> Device {
    module
        .devices()
        .first()
        .cloned()
        .unwrap_or_else(Device::flex)
}

/// Parses `cpu`, `cuda`, `cuda:N` or `wgpu` into a Burn device.
pub fn parse_device(name: &str) -> Result<Device, DeviceError> {
    let lower = name.trim().to_ascii_lowercase();
    match lower.as_str() {
        "cpu" | "flex" => Ok(Device::flex()),
        "wgpu" => wgpu_device(name),
        _ => {
            let index = match lower.strip_prefix("cuda") {
                Some("") => 0,
                Some(rest) => rest
                    .strip_prefix(':')
                    .and_then(|i| i.parse::<usize>().ok())
                    .ok_or_else(|| DeviceError::Unknown(name.into()))?,
                None => return Err(DeviceError::Unknown(name.into())),
            };
            cuda_device(name, index)
        }
    }
}

#[cfg(feature = "cuda")]
fn cuda_device(_name: &str, index: usize) -> Result<Device, DeviceError> {
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(name: &str, _index: usize) -> Result<Device, DeviceError> {
    Err(DeviceError::NotBuilt {
        name: name.into(),
        feature: "cuda",
    })
}

#[cfg(feature = "wgpu")]
fn wgpu_device(_name: &str) -> Result<Device, DeviceError> {
    Ok(Device::wgpu(burn::tensor::DeviceKind::default()))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device(name: &str) -> Result<Device, DeviceError> {
    Err(DeviceError::NotBuilt {
        name: name.into(),
        feature: "wgpu",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_or_fail_clearly() {
        assert!(parse_device("cpu").is_ok());
        assert!(matches!(parse_device("tpu"), Err(DeviceError::Unknown(_))));
        assert!(matches!(
            parse_device("cuda:x"),
            Err(DeviceError::Unknown(_))
        ));
        #[cfg(not(feature = "cuda"))]
        assert!(
            parse_device("cuda:1")
                .unwrap_err()
                .to_string()
                .contains("--features cuda")
        );
    }
}
