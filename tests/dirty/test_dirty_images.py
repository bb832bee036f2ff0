"""Bad images never crash ImageEncoder silently or lose a row: a clear error or an explicit NaN row."""

import re
import resource
import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import skmm
from dirtydata import image_bytes, noise_image, png_claiming
from skmm.io import decode_image

BAD_FILES = {
    # file name: what the message must say about it
    "missing.png": "file not found",
    "folder.png": "is a directory",
    "truncated.png": "not a readable image: corrupt or truncated PNG",
    "truncated.jpg": r"not a readable image \(Truncated File Read\)",
    "corrupt.png": "not a readable image: corrupt or truncated PNG",
    "notes.png": "not a readable image: Pillow cannot identify it",
}


@pytest.mark.parametrize("name, reason", BAD_FILES.items())
def test_bad_file_raises_input_error_naming_row_file_and_reason(image_encoder, bad_images, name, reason):
    good = image_bytes(noise_image())
    with pytest.raises(skmm.InputError, match=rf"row 1, '.*{name}': .*{reason}.*on_error='missing'"):
        image_encoder().transform([good, str(bad_images[name])])


def test_bad_file_in_a_series_names_the_index_label(image_encoder, bad_images):
    column = pd.Series([str(bad_images["truncated.jpg"])], index=["photo-17"])
    with pytest.raises(skmm.InputError, match=r"row 0 \(index 'photo-17'\), '.*truncated\.jpg'"):
        image_encoder().transform(column)


def test_missing_policy_keeps_every_row_in_order_and_warns_once(image_encoder, bad_images):
    good = noise_image(seed=1)
    rows = [good, *(str(bad_images[name]) for name in BAD_FILES), None, str(bad_images["empty.png"]), good]
    encoder = image_encoder(on_error="missing")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Z = encoder.transform(rows)
    assert Z.shape == (len(rows), encoder.n_features_out_)
    assert np.isfinite(Z[[0, -1]]).all()
    np.testing.assert_array_equal(Z[0], Z[-1])
    assert np.isnan(Z[1:-1]).all()  # the bad files, None (absent) and an empty file (bad)
    input_warnings = [w for w in caught if issubclass(w.category, skmm.InputWarning)]
    assert len(input_warnings) == 1
    message = str(input_warnings[0].message)
    assert f"{len(BAD_FILES) + 1} of {len(rows)} rows could not be encoded" in message
    assert "row 1" in message and "missing.png" in message and "... and 2 more" in message


def test_empty_file_bytes_and_strings_are_absent_not_errors(image_encoder, bad_images):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Z = image_encoder().transform([b"", "", "  ", None, np.nan])
    assert np.isnan(Z).all()
    # an empty *file* is data that cannot be read
    with pytest.raises(skmm.InputError, match=r"empty\.png': not a readable image"):
        image_encoder().transform([str(bad_images["empty.png"])])


# --------------------------------------------------------------------------- decompression bombs


def test_decompression_bomb_is_refused_before_decoding(image_encoder, tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(100_000, 100_000))  # 30 GB of pixels, in 70 bytes
    encoder = image_encoder()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    with pytest.raises(skmm.InputError, match=r"row 0, '.*bomb\.png': image refused as a decompression bomb"):
        encoder.transform([str(path)])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert peak < 5_000_000  # refused from the header: no pixel buffer (and no time) was spent
    assert grown_kib < 100_000  # ru_maxrss is in KiB on Linux: not even 100 MB, let alone 30 GB


def test_max_pixels_refuses_smaller_bombs_with_the_way_out(image_encoder):
    data = png_claiming(5000, 4000)
    with pytest.raises(skmm.InputError, match=r"5000x4000 = 20,000,000 pixels, over max_pixels=1,000,000; raise max_pixels"):
        image_encoder(max_pixels=1_000_000).transform([data])
    with pytest.raises(ValueError, match="over max_pixels"):
        decode_image(data, max_pixels=1_000_000)
    Z = image_encoder(max_pixels=1_000_000, on_error="missing")
    with pytest.warns(skmm.InputWarning, match="1 of 2 rows"):
        out = Z.transform([data, noise_image()])
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()


def test_pil_image_over_max_pixels_is_refused(image_encoder):
    with pytest.raises(skmm.InputError, match=r"row 0, <PIL.*over max_pixels=100"):
        image_encoder(max_pixels=100).transform([Image.new("RGB", (20, 20))])


# --------------------------------------------------------------------------- unusual but valid images


def test_16_bit_grey_png_matches_its_8_bit_version(image_encoder):
    levels = np.arange(256, dtype=np.uint16).reshape(16, 16)
    sixteen = Image.fromarray(levels * 257)  # mode I;16
    assert sixteen.mode.startswith("I;16")
    data = image_bytes(sixteen)
    decoded = np.asarray(decode_image(data)).astype(int)
    np.testing.assert_allclose(decoded[..., 0], levels, atol=1)
    Z = image_encoder().transform([data, Image.fromarray(levels.astype(np.uint8))])
    np.testing.assert_allclose(Z[0], Z[1], atol=1e-2)


def test_cmyk_jpeg_is_converted_to_rgb(image_encoder):
    data = image_bytes(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)  # red
    red = np.asarray(decode_image(data))
    assert red.shape == (16, 16, 3)
    assert red[..., 0].min() > 200 and red[..., 1:].max() < 60
    assert np.isfinite(image_encoder().transform([data])).all()


@pytest.mark.parametrize("transparent", [False, True])
def test_palette_png_with_and_without_transparency(image_encoder, transparent):
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)  # index 0 black, index 1 red
    palette.putpixel((0, 0), 0)
    params = {"transparency": 0} if transparent else {}
    data = image_bytes(palette, **params)
    pixels = np.asarray(decode_image(data))
    assert tuple(pixels[1, 1]) == (255, 0, 0)
    assert tuple(pixels[0, 0]) == ((255, 255, 255) if transparent else (0, 0, 0))  # on white
    assert np.isfinite(image_encoder().transform([data])).all()


def test_grey_with_alpha_is_composited_on_white(image_encoder):
    grey = Image.new("LA", (4, 4), (0, 255))
    grey.putpixel((0, 0), (0, 0))  # a fully transparent black pixel
    for image in (grey, Image.open(__import__("io").BytesIO(image_bytes(grey))), grey.convert("La")):
        pixels = np.asarray(decode_image(image))
        assert tuple(pixels[0, 0]) == (255, 255, 255) and tuple(pixels[1, 1]) == (0, 0, 0)
    assert np.isfinite(image_encoder().transform([grey, image_bytes(grey)])).all()


@pytest.mark.parametrize("format", ["GIF", "PNG"])
def test_animated_image_gives_its_first_frame(image_encoder, format):
    red, blue = Image.new("RGB", (16, 16), (255, 0, 0)), Image.new("RGB", (16, 16), (0, 0, 255))
    data = image_bytes(red, format, save_all=True, append_images=[blue], duration=100, loop=0)
    assert Image.open(__import__("io").BytesIO(data)).n_frames == 2
    first = np.asarray(decode_image(data))
    assert tuple(first[8, 8]) == (255, 0, 0)
    Z = image_encoder().transform([data, red])
    np.testing.assert_allclose(Z[0], Z[1], atol=1e-5)


def test_empty_pil_image_is_an_error_not_a_crash(image_encoder):
    with pytest.raises(skmm.InputError, match=r"image is empty \(0x5 pixels\)"):
        image_encoder().transform([Image.new("RGB", (0, 5))])


# --------------------------------------------------------------------------- numpy arrays


@pytest.mark.parametrize(
    "array, reason",
    [
        (np.zeros((3, 16, 16), np.uint8), r"got shape \(3, 16, 16\) \(channels first\? use np.moveaxis"),
        (np.zeros((2, 16, 16, 3), np.uint8), r"got shape \(2, 16, 16, 3\)"),
        (np.zeros(16, np.uint8), r"got shape \(16,\)"),
        (np.zeros((16, 0, 3), np.uint8), r"image array is empty"),
        (np.zeros((16, 16), np.int32), r"dtype uint8, uint16, bool or float.*got dtype int32"),
        (np.zeros((16, 16), np.complex64), r"got dtype complex64"),
        (np.full((16, 16), np.nan), r"NaN or infinite"),
    ],
    ids=["channels-first", "4-d", "1-d", "empty", "int32", "complex", "nan"],
)
def test_array_with_wrong_shape_or_dtype(image_encoder, array, reason):
    with pytest.raises(skmm.InputError, match=rf"row 1, <array shape=.*>: .*{reason}"):
        image_encoder().transform([np.zeros((8, 8, 3), np.uint8), array])
    with pytest.warns(skmm.InputWarning, match="1 of 2 rows"):
        Z = image_encoder(on_error="missing").transform([np.zeros((8, 8, 3), np.uint8), array])
    assert np.isfinite(Z[0]).all() and np.isnan(Z[1]).all()


def test_arrays_of_every_supported_layout_and_dtype_agree(image_encoder):
    grey = np.tile(np.linspace(0, 1, 16), (16, 1))
    rows = [
        (grey * 255).round().astype(np.uint8),                       # (H, W) uint8
        (grey * 255).round().astype(np.uint8)[..., None],             # (H, W, 1)
        ((grey * 255).round() * 257).astype(np.uint16),               # 16-bit
        grey.astype(np.float32),                                      # float in [0, 1]
        np.repeat((grey * 255).round().astype(np.uint8)[..., None], 3, axis=2),  # RGB
        np.concatenate(  # RGBA, opaque
            [np.repeat((grey * 255).round().astype(np.uint8)[..., None], 3, axis=2),
             np.full((16, 16, 1), 255, np.uint8)], axis=2),
    ]
    Z = image_encoder().transform(rows)
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(Z, np.broadcast_to(Z[0], Z.shape), atol=1e-5)
    boolean = image_encoder().transform([np.eye(8, dtype=bool), np.eye(8, dtype=np.uint8) * 255])
    np.testing.assert_allclose(boolean[0], boolean[1], atol=1e-6)


def test_wrong_python_type_is_an_input_error(image_encoder):
    with pytest.raises(skmm.InputError, match=r"row 0, 42: expected an image as a file path, bytes"):
        image_encoder().transform([42])


# --------------------------------------------------------------------------- absurd shapes


def png_of_shape(width, height):
    return image_bytes(Image.new("L", (width, height)), "PNG")


@pytest.mark.parametrize("width, height", [(20_000, 1), (2_000_000, 1), (1, 5_000)])
def test_absurd_aspect_ratios_are_refused_as_input_errors(image_encoder, width, height):
    data = png_of_shape(width, height)  # valid PNGs of a few hundred bytes
    with pytest.raises(skmm.InputError, match=rf"row 0, <\d+ bytes>: image is {width}x{height} pixels, an aspect ratio over 100:1"):
        image_encoder().transform([data])
    with pytest.warns(skmm.InputWarning, match="1 of 2 rows"):
        Z = image_encoder(on_error="missing").transform([data, noise_image()])
    assert np.isnan(Z[0]).all() and np.isfinite(Z[1]).all()
    with pytest.raises(ValueError, match="aspect ratio"):
        skmm.io.check_image_header(data)  # what the server checks on upload


def test_long_images_within_the_limit_are_cropped_from_their_centre(image_encoder):
    from skmm.encoders._image import _center_crop_array

    wide = Image.new("RGB", (10_000, 100), "white")
    wide.paste((255, 0, 0), (4_950, 0, 5_050, 100))  # a red square in the middle
    crop = _center_crop_array(wide, 224)
    assert crop.shape == (224, 224, 3)
    assert (crop[:, 16:-16] == (255, 0, 0)).all()  # the centre, resampled, not the white ends
    assert np.isfinite(image_encoder().transform([wide])).all()


@pytest.mark.parametrize("orientation, turned", [(1, False), (6, True), (8, True), (3, False)])
def test_exif_orientation_is_applied(image_encoder, orientation, turned):
    stored = Image.new("RGB", (40, 20), "white")
    stored.paste((255, 0, 0), (0, 0, 20, 20))  # red on the left half as stored
    exif = Image.Exif()
    exif[0x0112] = orientation  # the Orientation tag a phone writes
    data = image_bytes(stored, "JPEG", exif=exif.tobytes(), quality=95)
    upright = decode_image(data)
    assert upright.size == ((20, 40) if turned else (40, 20))
    expected = {1: stored, 3: stored.rotate(180), 6: stored.rotate(-90, expand=True),
                8: stored.rotate(90, expand=True)}[orientation]
    assert np.abs(np.asarray(upright, float) - np.asarray(expected, float)).mean() < 8  # JPEG noise
    encoder = image_encoder()
    np.testing.assert_allclose(encoder.transform([data]), encoder.transform([expected]), atol=1e-2)


def test_error_messages_show_no_memory_addresses(image_encoder):
    with pytest.raises(skmm.InputError) as error:
        image_encoder(max_pixels=100).transform([Image.new("RGB", (20, 20))])
    assert "<PIL.Image.Image image mode=RGB size=20x20>" in str(error.value)
    assert not re.search(r"0x[0-9a-fA-F]{6,}", str(error.value))
    with pytest.raises(skmm.InputError) as error:
        image_encoder().transform([object()])
    assert "<object object>" in str(error.value)
    assert not re.search(r"0x[0-9a-fA-F]{6,}", str(error.value))


def test_the_warning_points_at_the_users_line_and_is_not_repeated(image_encoder):
    from sklearn.compose import ColumnTransformer

    encoder = image_encoder(on_error="missing")
    columns = ColumnTransformer([("photo", encoder, "photo")])
    frame = pd.DataFrame({"photo": [b"not an image", image_bytes(noise_image())]})
    with pytest.warns(skmm.InputWarning):
        columns.fit(frame)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            columns.transform(frame)  # the same line, three times
    found = [w for w in caught if issubclass(w.category, skmm.InputWarning)]
    assert len(found) == 1
    assert found[0].filename == __file__  # this test's line, not scikit-learn's internals
