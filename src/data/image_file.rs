//! Reading an image file's bytes safely, before any decoder sees them: only a regular
//! file (a FIFO or a device named `x.png` would block or never end), no larger than the
//! memory limit, and a JPEG only when it is whole. A truncated JPEG otherwise decodes
//! "successfully" with its missing rows filled grey (decoders do that to show something
//! of a damaged photo, as browsers do); PIL refuses it as truncated, and so does mentor.

use std::path::Path;

use super::DataError;

/// The bytes of the image file at `path`, checked as the module says.
pub fn read_image_file(path: &Path) -> Result<Vec<u8>, DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(DataError::format(path, "a folder, not an image file"));
    }
    if !meta.is_file() {
        return Err(DataError::format(
            path,
            "not a regular file (a FIFO, socket or device cannot hold an image)",
        ));
    }
    super::limits::check_allocation(
        &format!("reading {}", path.display()),
        u128::from(meta.len()),
    )?;
    let bytes = std::fs::read(path).map_err(io)?;
    if !jpeg_is_whole(&bytes) {
        return Err(DataError::format(
            path,
            "truncated JPEG: its last scan has no end-of-image marker (the file was cut short)",
        ));
    }
    Ok(bytes)
}

/// Whether `bytes` are not a JPEG, or a JPEG whose last scan (the last start-of-scan
/// marker, FF DA) is followed by an end-of-image marker (FF D9). Neither marker can
/// occur inside entropy-coded data (an FF byte there is stuffed as FF 00), and an
/// embedded EXIF thumbnail's markers come before the main image's first scan, so a
/// file cut anywhere after its headers fails this test.
pub fn jpeg_is_whole(bytes: &[u8]) -> bool {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return true;
    }
    let Some(scan) = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]) else {
        return false;
    };
    bytes[scan..].windows(2).any(|w| w == [0xFF, 0xD9])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8])
        });
        let mut bytes = std::io::Cursor::new(Vec::new());
        image
            .write_to(&mut bytes, image::ImageFormat::Jpeg)
            .unwrap();
        bytes.into_inner()
    }

    #[test]
    fn a_whole_jpeg_passes_and_every_cut_after_its_headers_is_refused() {
        let whole = jpeg(40, 30);
        assert!(jpeg_is_whole(&whole));
        let scan = whole.windows(2).rposition(|w| w == [0xFF, 0xDA]).unwrap();
        for len in (scan + 2..whole.len()).step_by(7).chain([whole.len() - 1]) {
            assert!(!jpeg_is_whole(&whole[..len]), "cut to {len} bytes passed");
        }
        // Bytes after the end marker (padding some cameras write) are fine.
        let mut padded = whole.clone();
        padded.extend([0u8; 16]);
        assert!(jpeg_is_whole(&padded));
        assert!(jpeg_is_whole(b"\x89PNG not a jpeg"));
    }

    #[test]
    fn a_truncated_jpeg_a_fifo_and_a_folder_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let whole = jpeg(40, 30);
        let good = dir.path().join("good.jpg");
        std::fs::write(&good, &whole).unwrap();
        assert_eq!(read_image_file(&good).unwrap(), whole);
        let cut = dir.path().join("cut.jpg");
        std::fs::write(&cut, &whole[..whole.len() * 3 / 4]).unwrap();
        let e = read_image_file(&cut).unwrap_err().to_string();
        assert!(e.contains("cut.jpg") && e.contains("truncated"), "{e}");
        let folder = dir.path().join("folder.png");
        std::fs::create_dir(&folder).unwrap();
        let e = read_image_file(&folder).unwrap_err().to_string();
        assert!(e.contains("folder.png") && e.contains("a folder"), "{e}");
        #[cfg(unix)]
        {
            let fifo = dir.path().join("fifo.png");
            let made = std::process::Command::new("mkfifo").arg(&fifo).status();
            if made.is_ok_and(|s| s.success()) {
                // Would block forever if it were opened for reading.
                let e = read_image_file(&fifo).unwrap_err().to_string();
                assert!(e.contains("fifo.png") && e.contains("regular file"), "{e}");
            }
        }
    }
}
