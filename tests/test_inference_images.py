"""load_images: DUSt3R's preprocessing (vs mini-dust3r's load_images), inputs, transforms, errors."""
import hashlib
import os
import shutil

import numpy as np
import PIL.Image
import pytest

from dynadust3r_jax.inference import load_images, to_original_matrix
from tests.conftest import FIXTURES

IMAGES = FIXTURES / 'inference_images'
CASES = {'s512': dict(size=512, square_ok=False), 's224': dict(size=224, square_ok=False),
         's512sq': dict(size=512, square_ok=True)}


@pytest.fixture(scope='module')
def ref():
  return np.load(FIXTURES / 'inference_load_images.npz')


@pytest.mark.parametrize('case', list(CASES))
def test_matches_mini_dust3r(ref, case):
  """Folder of 5 images (landscape PNG, portrait JPEG, square, gray PNG, EXIF-rotated JPEG): same order,
  shapes and float32 pixels, bit for bit (both venvs have Pillow 13.0.0)."""
  imgs = load_images(str(IMAGES), **CASES[case])
  names = list(ref[f'{case}_names'])
  assert [d['name'] for d in imgs] == names
  assert [d['idx'] for d in imgs] == list(range(5)) and [d['instance'] for d in imgs] == list('01234')
  np.testing.assert_array_equal(np.concatenate([d['true_shape'] for d in imgs]), ref[f'{case}_true_shape'])
  for k, d in enumerate(imgs):
    x = d['img']  # (1,H,W,3)
    assert x.dtype == np.float32 and d['true_shape'].dtype == np.int32
    assert x.shape == (1, *ref[f'{case}_true_shape'][k], 3)
    h = x.shape[1]
    u8 = np.round((x[0] + 1) * 127.5).astype(np.uint8)
    rows = np.concatenate([u8[:4], u8[h // 2 - 2:h // 2 + 2]])
    np.testing.assert_array_equal(rows, ref[f'{case}_rows_{k}'], err_msg=f'{case} {names[k]}')
    np.testing.assert_array_equal(x[0, :8, :8].transpose(2, 0, 1), ref[f'{case}_corner_{k}'])
    assert hashlib.sha256(np.ascontiguousarray(x[0]).tobytes()).hexdigest() == str(ref[f'{case}_sha256_{k}'])
    assert x.min() >= -1 and x.max() <= 1


def test_transforms_recorded():
  imgs = {d['name']: d for d in load_images(str(IMAGES))}
  # (orig_shape, resized_shape, crop_offset (top, left), true_shape)
  expect = {'a_landscape.png': ((360, 600), (307, 512), (1, 0), (304, 512)),  # LANCZOS down, crop 307 → 304
            'b_portrait.jpg': ((500, 300), (512, 307), (0, 1), (512, 304)),
            'c_square.png': ((200, 200), (512, 512), (64, 0), (384, 512)),  # BICUBIC up, square → 4:3
            'd_small_gray.png': ((50, 90), (284, 512), (6, 0), (272, 512)),
            'e_exif.jpg': ((240, 160), (512, 341), (0, 2), (512, 336))}  # stored 240x160, EXIF rotation 6
  for name, (orig, resized, off, shape) in expect.items():
    d = imgs[name]
    assert (d['orig_shape'], d['resized_shape'], d['crop_offset']) == (orig, resized, off), name
    assert tuple(d['true_shape'][0]) == shape
  sq = load_images([str(IMAGES / 'c_square.png')], square_ok=True)[0]
  assert sq['crop_offset'] == (0, 0) and tuple(sq['true_shape'][0]) == (512, 512)
  s224 = load_images([str(IMAGES / 'a_landscape.png')], size=224)[0]
  assert s224['resized_shape'] == (224, 373) and s224['crop_offset'] == (0, 74)  # 373 = round(224·600/360)


@pytest.mark.parametrize('size,shape', [(512, (360, 600)), (224, (360, 600)), (512, (600, 360)), (512, (77, 201))])
def test_to_original_matrix_maps_a_dot_back(tmp_path, size, shape):
  """A bright 4x4 block at a known place: its centroid in the processed image, mapped by A, lands on the
  original centroid (pixel edges at integers: a block over pixels [x, x+4) has its centre at x+2)."""
  h0, w0 = shape
  img = np.zeros((h0, w0, 3), np.uint8)
  y, x = int(h0 * 0.4), int(w0 * 0.55)
  img[y:y + 4, x:x + 4] = 255
  PIL.Image.fromarray(img).save(tmp_path / 'dot.png')
  d = load_images([str(tmp_path / 'dot.png')], size=size)[0]
  v = np.clip(d['img'][0, ..., 0] + 1, 0, None)  # (H,W) ≥ 0, zero on the black background
  rr, cc = np.mgrid[0:v.shape[0], 0:v.shape[1]] + 0.5  # pixel centres
  centroid = np.array([(v * cc).sum() / v.sum(), (v * rr).sum() / v.sum(), 1.0])
  x0, y0, _ = to_original_matrix(d) @ centroid
  assert abs(x0 - (x + 2)) < 0.3 and abs(y0 - (y + 2)) < 0.3
  # intrinsics: the processed image's centre maps to the centre of the crop window in the original
  hp, wp = d['true_shape'][0]
  k = np.array([[100., 0., wp / 2], [0., 100., hp / 2], [0., 0., 1.]])
  k0 = to_original_matrix(d) @ k
  (h1, w1), (top, left) = d['resized_shape'], d['crop_offset']
  np.testing.assert_allclose(k0[:2, 2], [(left + wp / 2) * w0 / w1, (top + hp / 2) * h0 / h1])
  np.testing.assert_allclose(np.diag(k0)[:2], [100 * w0 / w1, 100 * h0 / h1])


def test_inputs_list_glob_and_skipped_files(tmp_path):
  for n in ['b.png', 'a.JPG', 'c.jpeg']:
    shutil.copy(IMAGES / 'a_landscape.png', tmp_path / n)  # content type from the file, not the extension
  (tmp_path / 'notes.txt').write_text('not an image')
  (tmp_path / 'sub.png').mkdir()  # a folder with an image-like name is skipped by the glob
  assert [d['name'] for d in load_images(str(tmp_path))][:3] == ['a.JPG', 'b.png', 'c.jpeg']
  assert [d['name'] for d in load_images(str(tmp_path / '*.png'))] == ['b.png']
  listed = load_images([str(tmp_path / 'c.jpeg'), str(tmp_path / 'a.JPG')])  # list order kept
  assert [(d['name'], d['idx'], d['instance']) for d in listed] == [('c.jpeg', 0, '0'), ('a.JPG', 1, '1')]
  one = load_images(tmp_path / 'b.png')  # a single image path (PathLike)
  assert len(one) == 1 and one[0]['name'] == 'b.png'


def test_video_frames(tmp_path):
  from data.synthetic import write_mp4  # pylint: disable=import-outside-toplevel
  frames = np.stack([np.full((48, 80, 3), 20 + 30 * t, np.uint8) for t in range(7)])  # brightness ~ t
  frames[:, 10:20, 30:40] = 255
  path = str(tmp_path / 'clip.mp4')
  write_mp4(path, frames)
  imgs = load_images(path, size=224, frame_stride=2, max_frames=3)
  assert [d['name'] for d in imgs] == ['clip_000000.png', 'clip_000002.png', 'clip_000004.png']
  assert [d['idx'] for d in imgs] == [0, 1, 2] and all(d['orig_shape'] == (48, 80) for d in imgs)
  means = [float(d['img'].mean()) for d in imgs]
  assert means[0] < means[1] < means[2]
  # same pixels as the decoded frames saved losslessly and loaded as images
  from dynadust3r_jax.common.video import open_video  # pylint: disable=import-outside-toplevel
  video = open_video(path)
  for t in (0, 2, 4):
    PIL.Image.fromarray(video[t]).save(tmp_path / f'f{t}.png')
  as_images = load_images([str(tmp_path / f'f{t}.png') for t in (0, 2, 4)], size=224)
  for a, b in zip(imgs, as_images):
    np.testing.assert_array_equal(a['img'], b['img'])
  assert len(load_images(path)) == 7


def test_errors_name_the_input(tmp_path):
  empty = tmp_path / 'empty'
  empty.mkdir()
  with pytest.raises(ValueError, match=f'{empty}: no images in this folder'):
    load_images(str(empty))
  (empty / 'a.txt').write_text('x')
  with pytest.raises(ValueError, match='no images in this folder'):
    load_images(str(empty))
  with pytest.raises(FileNotFoundError, match='nowhere/x: no such file'):
    load_images(str(tmp_path / 'nowhere' / 'x'))
  with pytest.raises(ValueError, match=r'\*\.png: the pattern matches no image files'):
    load_images(str(empty / '*.png'))
  with pytest.raises(ValueError, match='a.txt: not an image file'):
    load_images([str(empty / 'a.txt')])
  with pytest.raises(FileNotFoundError, match='gone.png: no such image file'):
    load_images([str(tmp_path / 'gone.png')])
  with pytest.raises(ValueError, match='empty list'):
    load_images([])
  with pytest.raises(TypeError, match='got int'):
    load_images(3)
  # truncated PNG and a file that is no image at all
  data = (IMAGES / 'a_landscape.png').read_bytes()
  (tmp_path / 'cut.png').write_bytes(data[:len(data) // 2])
  with pytest.raises(ValueError, match=r'cut.png: unreadable image \(OSError: image file is truncated'):
    load_images([str(tmp_path / 'cut.png')])
  (tmp_path / 'junk.jpg').write_bytes(b'not a jpeg')
  with pytest.raises(ValueError, match=r'junk.jpg: unreadable image \(UnidentifiedImageError'):
    load_images([str(tmp_path / 'junk.jpg')])
  # 2000x20 → 512x5 at size 512: no full patch row left
  PIL.Image.fromarray(np.zeros((20, 2000, 3), np.uint8)).save(tmp_path / 'strip.png')
  with pytest.raises(ValueError, match=r'strip.png: a 2000x20 image becomes 512x0 at size=512, smaller than '
                                       r'one 16-pixel patch'):
    load_images([str(tmp_path / 'strip.png')])
  # a video decord cannot open; a .txt given as the single input
  (tmp_path / 'bad.mp4').write_bytes(os.urandom(1000))
  with pytest.raises(ValueError, match='bad.mp4: unreadable video'):
    load_images(str(tmp_path / 'bad.mp4'))
  with pytest.raises(ValueError, match='a.txt: neither an image'):
    load_images(str(empty / 'a.txt'))
