//! An image folder: one sub-folder per class (sorted by name to give class indices),
//! PNG or JPEG files inside, all of the same size. Images are read with the `image`
//! crate; the channel count (1 grey or 3 RGB) follows the first image.

use std::path::{Path, PathBuf};

use super::{DataError, Dataset};

/// Reads `root/<class>/*.{png,jpg,jpeg}`. Returns the dataset and the class names.
pub fn read(root: &Path) -> Result<(Dataset, Vec<String>), DataError> {
    let io = |path: &Path, source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut classes: Vec<(String, PathBuf)> = std::fs::read_dir(root)
        .map_err(|e| io(root, e))?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    classes.sort();
    if classes.is_empty() {
        return Err(DataError::format(root, "no class sub-folders found"));
    }
    let mut images = Vec::new();
    let mut labels = Vec::new();
    let mut shape: Option<[usize; 3]> = None;
    for (label, (_, dir)) in classes.iter().enumerate() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg")
                })
            })
            .collect();
        files.sort();
        if files.is_empty() {
            // An empty class would be a class no image teaches (torchvision's
            // ImageFolder refuses it too).
            return Err(DataError::format(
                dir,
                "class folder holds no PNG or JPEG images: add images or remove the folder",
            ));
        }
        for file in files {
            let bytes = super::image_file::read_image_file(&file)?;
            let img = image::load_from_memory(&bytes)
                .map_err(|e| DataError::format(&file, format!("cannot decode image ({e})")))?;
            let channels = match shape {
                Some([c, _, _]) => c,
                None if img.color().has_color() => 3,
                None => 1,
            };
            let (w, h) = (img.width() as usize, img.height() as usize);
            let this = [channels, h, w];
            match shape {
                None => shape = Some(this),
                Some(s) if s != this => {
                    return Err(DataError::format(
                        &file,
                        format!("image is {w}x{h}, but earlier images are {}x{}", s[2], s[1]),
                    ));
                }
                _ => {}
            }
            if channels == 1 {
                let g = img.to_luma8();
                images.extend(g.pixels().map(|p| f32::from(p.0[0]) / 255.0));
            } else {
                let rgb = img.to_rgb8();
                for c in 0..3 {
                    images.extend(rgb.pixels().map(|p| f32::from(p.0[c]) / 255.0));
                }
            }
            labels.push(label);
        }
    }
    let shape = shape.ok_or_else(|| DataError::format(root, "no PNG or JPEG images found"))?;
    let names = classes.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
    let ds = Dataset::new(images, labels, shape, names.len())?;
    Ok((ds, names))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_classes_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        for (class, value) in [("b_cat", 200u8), ("a_dog", 10u8)] {
            std::fs::create_dir(dir.path().join(class)).unwrap();
            let img = image::GrayImage::from_pixel(3, 2, image::Luma([value]));
            img.save(dir.path().join(class).join("x.png")).unwrap();
        }
        let (d, names) = read(dir.path()).unwrap();
        assert_eq!(names, vec!["a_dog", "b_cat"]);
        assert_eq!(d.shape, [1, 2, 3]);
        assert_eq!(d.labels, vec![0, 1]);
        assert!((d.image(1)[0] - 200.0 / 255.0).abs() < 1e-6);
    }

    #[test]
    fn mismatched_sizes_and_broken_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("c")).unwrap();
        image::GrayImage::new(3, 2)
            .save(dir.path().join("c/a.png"))
            .unwrap();
        image::GrayImage::new(4, 2)
            .save(dir.path().join("c/b.png"))
            .unwrap();
        let msg = read(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("b.png") && msg.contains("4x2"), "{msg}");
        std::fs::write(dir.path().join("c/b.png"), b"not a png").unwrap();
        let msg = read(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("b.png") && msg.contains("decode"), "{msg}");
    }

    #[test]
    fn an_empty_class_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        for class in ["a", "b"] {
            std::fs::create_dir(dir.path().join(class)).unwrap();
        }
        image::GrayImage::new(3, 2)
            .save(dir.path().join("a/x.png"))
            .unwrap();
        let msg = read(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("/b") && msg.contains("no PNG or JPEG"),
            "{msg}"
        );
    }

    /// Seeded cuts, byte changes and random bytes of a PNG and a JPEG: errors, never
    /// panics.
    #[test]
    fn damaged_images_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("c")).unwrap();
        let mut good = Vec::new();
        for name in ["x.png", "x.jpg"] {
            let path = dir.path().join("c").join(name);
            image::RgbImage::from_fn(8, 6, |x, y| image::Rgb([x as u8 * 30, y as u8 * 40, 7]))
                .save(&path)
                .unwrap();
            good.push((path.clone(), std::fs::read(&path).unwrap()));
            std::fs::remove_file(&path).unwrap();
        }
        for (seed, (path, good)) in good.iter().enumerate() {
            for bytes in crate::damage::damaged_copies(good, 150, 64, seed as u64 + 1) {
                std::fs::write(path, &bytes).unwrap();
                let _ = read(dir.path());
                std::fs::remove_file(path).unwrap();
            }
        }
    }
}
