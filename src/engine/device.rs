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
    /// Data-parallel training was asked for on a backend that cannot all-reduce.
    #[error(
        "--devices: {0:?} cannot train data-parallel: Burn 0.22.1 all-reduces gradients only on CUDA (NCCL); its CPU (flex) and wgpu backends have no collective operations"
    )]
    NoCollectives(String),
    /// A device list names the same device twice.
    #[error("--devices: {0:?} is listed twice")]
    Repeated(String),
    /// An empty device list.
    #[error("--devices: give at least one device, e.g. cuda:0,cuda:1")]
    NoDevices,
    /// The backend is built in but does not work on this machine (no adapter, a broken
    /// driver): found by a tiny tensor written and read back before any training.
    #[error("device {name:?} is not usable on this machine: {reason}")]
    Unusable {
        /// The requested device.
        name: String,
        /// What the probe saw.
        reason: String,
    },
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

/// Parses a comma-separated device list for data-parallel training (`cuda:0,cuda:1`):
/// every device must exist in this build, appear once, and be able to all-reduce.
pub fn parse_devices(list: &str) -> Result<Vec<Device>, DeviceError> {
    let names: Vec<String> = list
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .map(|n| if n == "cuda" { "cuda:0".into() } else { n })
        .collect();
    if names.is_empty() {
        return Err(DeviceError::NoDevices);
    }
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(DeviceError::Repeated(name.clone()));
        }
        if !name.starts_with("cuda") {
            // A known backend without collectives is refused for that reason, built or not.
            return Err(match parse_device(name) {
                Err(unknown @ DeviceError::Unknown(_)) => unknown,
                _ => DeviceError::NoCollectives(name.clone()),
            });
        }
    }
    names.iter().map(|name| parse_device(name)).collect()
}

#[cfg(feature = "cuda")]
fn cuda_device(name: &str, index: usize) -> Result<Device, DeviceError> {
    probe(name, Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(name: &str, _index: usize) -> Result<Device, DeviceError> {
    Err(DeviceError::NotBuilt {
        name: name.into(),
        feature: "cuda",
    })
}

#[cfg(feature = "wgpu")]
fn wgpu_device(name: &str) -> Result<Device, DeviceError> {
    probe(name, Device::wgpu(burn::tensor::DeviceKind::default()))
}

/// `device` once a tiny tensor was written to it, doubled there and read back intact:
/// a missing or broken adapter (wgpu with no Vulkan driver, CUDA with no GPU) is one
/// clear error here instead of a panic inside the first training step. The backend's
/// panic is caught (its message becomes the reason) and not printed.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn probe(name: &str, device: Device) -> Result<Device, DeviceError> {
    use std::panic::{AssertUnwindSafe, catch_unwind, set_hook, take_hook};
    let unusable = |reason: String| DeviceError::Unusable {
        name: name.into(),
        reason,
    };
    // The backend may fail on its own thread first (no adapter) and then on this one (a
    // closed channel): every panic's message during the probe is kept, the first named.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let previous = take_hook();
    let record = seen.clone();
    set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the backend panicked".into());
        if let Ok(mut seen) = record.lock() {
            seen.push(message);
        }
    }));
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        burn::tensor::Tensor::<1>::from_floats([1.0, 2.0, 3.0], &device)
            .mul_scalar(2.0)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
    }));
    set_hook(previous);
    match outcome {
        Ok(Ok(values)) if values == [2.0, 4.0, 6.0] => Ok(device),
        Ok(Ok(values)) => Err(unusable(format!(
            "a test tensor [1, 2, 3] doubled came back as {values:?}"
        ))),
        Ok(Err(error)) => Err(unusable(format!(
            "reading a test tensor back failed: {error:?}"
        ))),
        Err(_) => {
            let seen = seen.lock().map(|m| m.clone()).unwrap_or_default();
            let first = seen
                .first()
                .and_then(|m| m.lines().next())
                .unwrap_or("the backend panicked");
            Err(unusable(format!(
                "the backend failed on a test tensor ({first}); for wgpu, is a Vulkan or OpenGL driver installed (`vulkaninfo --summary`; Debian: mesa-vulkan-drivers)?"
            )))
        }
    }
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device(name: &str) -> Result<Device, DeviceError> {
    Err(DeviceError::NotBuilt {
        name: name.into(),
        feature: "wgpu",
    })
}

pub use crate::data::limits::host_memory_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lists_refuse_backends_without_collectives_and_repeats() {
        let err = |list: &str| parse_devices(list).unwrap_err();
        assert_eq!(err("cpu"), DeviceError::NoCollectives("cpu".into()));
        assert_eq!(err(" , "), DeviceError::NoDevices);
        assert_eq!(err("cuda:0,cuda"), DeviceError::Repeated("cuda:0".into()));
        assert!(matches!(err("tpu"), DeviceError::Unknown(_)));
        assert!(err("cpu").to_string().contains("only on CUDA"));
        #[cfg(not(feature = "cuda"))]
        assert!(matches!(err("cuda:0,cuda:1"), DeviceError::NotBuilt { .. }));
        #[cfg(feature = "cuda")]
        assert_eq!(parse_devices("cuda:0,cuda:1").map(|d| d.len()), Ok(2));
    }

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
