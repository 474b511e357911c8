"""Synthetic mannequin: exact geometry, keypoints where the joints are rendered, determinism, variety."""

import numpy as np
import pytest

from dreamdance_core.pose.schema import BODY_NAMES
from dreamdance_core.synthetic import (
    STYLES,
    Part,
    random_character,
    random_motion,
    random_scene,
    render_frames,
    render_sample,
    rest_angles,
)
from dreamdance_core.synthetic.camera import Camera, Intrinsics
from dreamdance_core.synthetic.motion import MotionError
from dreamdance_core.synthetic.raycast import Capsule, Ellipsoid, cast_image, cast_rays
from dreamdance_core.synthetic.render import JOINT_OWNERS, Scene
from dreamdance_core.synthetic.skeleton import DOF_INDEX, DOF_LIMITS, DOFS

# 63 x 63 pixels: the centre pixel (31, 31) looks straight down -z.
ODD = Intrinsics.from_fov(63, 63, 40.0)


def _sphere_hit(dirs: np.ndarray, centre: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Textbook ray-sphere intersection for unit rays from the origin: (depth, normal)."""
    b = dirs @ centre
    t = b - np.sqrt(b * b - centre @ centre + radius**2)
    points = t[..., None] * dirs
    return -points[..., 2], (points - centre) / radius


def test_sphere_depth_and_normals_match_the_analytic_values():
    centre, radius = np.array([0.3, -0.2, -5.0]), 1.0
    hits = cast_image([Ellipsoid(centre, np.eye(3), np.full(3, radius), part=7)], ODD)
    dirs = ODD.ray_directions()
    # Every pixel whose ray passes within the radius of the centre is a hit, and only those.
    miss_distance = np.linalg.norm(dirs * (dirs @ centre)[..., None] - centre, axis=-1)
    np.testing.assert_array_equal(hits.part >= 0, miss_distance < radius)
    fg = hits.part >= 0
    assert fg.sum() > 200 and set(np.unique(hits.part[fg])) == {7}
    depth, normal = _sphere_hit(dirs[fg], centre, radius)
    np.testing.assert_allclose(hits.depth[fg], depth, atol=1e-9)
    np.testing.assert_allclose(hits.normal[fg], normal, atol=1e-9)
    assert np.all(np.isinf(hits.depth[~fg])) and np.all(hits.normal[~fg] == 0.0)


def test_centre_ray_hits_the_front_of_a_sphere():
    hits = cast_image([Ellipsoid(np.array([0.0, 0.0, -5.0]), np.eye(3), np.full(3, 1.0), part=0)], ODD)
    assert hits.depth[31, 31] == pytest.approx(4.0, abs=1e-12)
    np.testing.assert_allclose(hits.normal[31, 31], [0.0, 0.0, 1.0], atol=1e-12)


def test_capsule_body_and_caps_match_the_analytic_values():
    """Horizontal capsule along x at depth 5, radius 0.5: the centre row sees the cylinder's front line at depth
    4.5 with normal +z; the centre column sees the circle y^2 + (z + 5)^2 = r^2; beyond the ends, sphere caps."""
    a, b, r = np.array([-1.0, 0.0, -5.0]), np.array([1.0, 0.0, -5.0]), 0.5
    hits = cast_image([Capsule(a, b, r, part=3)], ODD)
    dirs = ODD.ray_directions()
    x_at_front = dirs[31, :, 0] / -dirs[31, :, 2] * 4.5
    body_cols = np.abs(x_at_front) < 1.0
    np.testing.assert_allclose(hits.depth[31, body_cols], 4.5, atol=1e-9)
    np.testing.assert_allclose(hits.normal[31, body_cols], np.tile([0.0, 0.0, 1.0], (body_cols.sum(), 1)), atol=1e-9)

    column = hits.part[:, 31] >= 0
    depth, normal = _sphere_hit(dirs[column, 31], np.array([0.0, 0.0, -5.0]), r)  # the x = 0 cross-section
    np.testing.assert_allclose(hits.depth[column, 31], depth, atol=1e-9)
    np.testing.assert_allclose(hits.normal[column, 31], normal, atol=1e-9)

    for end, side in ((a, -1.0), (b, 1.0)):
        cap_cols = (side * x_at_front > 1.0) & (hits.part[31] >= 0)
        assert cap_cols.sum() >= 1
        depth, normal = _sphere_hit(dirs[31, cap_cols], end, r)
        np.testing.assert_allclose(hits.depth[31, cap_cols], depth, atol=1e-9)
        np.testing.assert_allclose(hits.normal[31, cap_cols], normal, atol=1e-9)


def test_rotated_ellipsoid_hits_lie_on_its_surface_with_gradient_normals():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    ell = Ellipsoid(np.array([0.2, 0.1, -4.0]), q, np.array([0.3, 0.6, 0.2]), part=1)
    hits = cast_image([ell], ODD)
    fg = hits.part >= 0
    points = hits.t[fg][:, None] * ODD.ray_directions()[fg]
    local = (points - ell.centre) @ ell.axes / ell.radii
    np.testing.assert_allclose(np.linalg.norm(local, axis=-1), 1.0, atol=1e-9)
    gradient = ((points - ell.centre) @ ell.axes / ell.radii**2) @ ell.axes.T
    gradient /= np.linalg.norm(gradient, axis=-1, keepdims=True)
    np.testing.assert_allclose(hits.normal[fg], gradient, atol=1e-9)
    assert np.all(hits.normal[fg] @ np.array([0.0, 0.0, 1.0]) > -0.5)  # mostly facing the camera


def test_z_buffer_keeps_the_nearest_primitive():
    far = Ellipsoid(np.array([0.0, 0.0, -6.0]), np.eye(3), np.full(3, 1.0), part=1)
    near = Ellipsoid(np.array([0.0, 0.0, -4.0]), np.eye(3), np.full(3, 0.3), part=2)
    for order in ([far, near], [near, far]):
        hits = cast_image(order, ODD)
        assert hits.part[31, 31] == 2 and hits.depth[31, 31] == pytest.approx(3.7)
        ray = cast_rays(order, np.array([[0.0, 0.0, -1.0]]))
        assert ray.part[0] == 2 and ray.depth[0] == pytest.approx(3.7)


@pytest.fixture(scope="module")
def sample():
    return render_sample(character_seed=3, motion_seed=4, scene_seed=5, num_frames=4, width=64, height=96)


def test_rendered_character_has_unit_normals_and_finite_depth_exactly_on_the_mask(sample):
    for frames in (sample.reference, sample.clip):
        fg = frames.mask
        assert 0.03 < fg.mean() < 0.6
        np.testing.assert_allclose(np.linalg.norm(frames.normal[fg], axis=-1), 1.0, atol=1e-5)
        assert np.all(frames.normal[~fg] == 0.0)
        assert np.all(np.isfinite(frames.depth[fg])) and np.all(np.isinf(frames.depth[~fg]))
        assert np.array_equal(fg, frames.part >= 0)
        # Visible surfaces face the camera (z toward the viewer), up to grazing angles at the silhouette.
        assert np.mean(frames.normal[fg][:, 2] > 0) > 0.97
        assert frames.rgb.dtype == np.uint8 and frames.depth.dtype == np.float32


def _scene_at(distance: float, width: int = 64, height: int = 96) -> Scene:
    base = random_scene(0, width, height)
    camera = Camera.look_at(Intrinsics.from_fov(width, height, 40.0), np.array([0.0, 0.9, distance]),
                            np.array([0.0, 0.9, 0.0]))
    return Scene(0, camera, base.background_top, base.background_bottom, base.light_direction, base.ambient)


def test_depth_increases_with_camera_distance():
    character = random_character(1)
    near = render_frames(character, _scene_at(3.0), rest_angles()[None])
    far = render_frames(character, _scene_at(4.0), rest_angles()[None])
    np.testing.assert_allclose(far.joints_camera[..., 2], near.joints_camera[..., 2] - 1.0, atol=1e-9)
    assert np.median(far.depth[far.mask]) == pytest.approx(np.median(near.depth[near.mask]) + 1.0, abs=0.05)
    assert far.mask.sum() < near.mask.sum()  # and the figure is smaller


def test_keypoints_project_onto_the_parts_of_their_joints():
    sample = render_sample(7, 8, 9, num_frames=3, width=128, height=192)
    for frames in (sample.reference, sample.clip):
        for kp, part in zip(frames.keypoints, frames.part):
            visible = kp[:, 2] == 1.0
            assert visible.sum() >= 10
            cols, rows = kp[visible, 0].astype(int), kp[visible, 1].astype(int)
            hit = part[rows, cols]
            assert np.all(hit >= 0), "a visible keypoint landed on the background"
            owned = JOINT_OWNERS[np.flatnonzero(visible), hit]
            assert owned.mean() >= 0.9, [BODY_NAMES[j] for j in np.flatnonzero(visible)[~owned]]
    neck = sample.reference.keypoints[0, BODY_NAMES.index("neck")].astype(int)
    assert sample.reference.part[0, neck[1], neck[0]] in (Part.NECK, Part.SHOULDERS, Part.CHEST)


def test_frontal_reference_follows_openpose_sides_and_shows_the_face():
    frames = render_frames(random_character(2), _scene_at(3.5), rest_angles()[None])
    kp = dict(zip(BODY_NAMES, frames.keypoints[0]))
    # The person's right appears on the image's left when facing the camera.
    for joint in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle", "eye", "ear"):
        assert kp[f"right_{joint}"][0] < kp[f"left_{joint}"][0], joint
    assert kp["nose"][1] < kp["neck"][1] < kp["right_hip"][1] < kp["right_knee"][1] < kp["right_ankle"][1]
    assert np.all(frames.keypoints[0, :, 2] == 1.0)


def test_back_view_hides_the_face_but_keeps_the_body():
    angles = rest_angles()
    angles[DOF_INDEX["root_yaw"]] = np.pi
    frames = render_frames(random_character(2), _scene_at(3.5), angles[None])
    conf = dict(zip(BODY_NAMES, frames.keypoints[0, :, 2]))
    assert all(conf[name] == 0.0 for name in ("nose", "right_eye", "left_eye"))
    assert all(conf[name] > 0.0 for name in BODY_NAMES[1:14])
    kp = dict(zip(BODY_NAMES, frames.keypoints[0]))
    assert kp["right_shoulder"][0] > kp["left_shoulder"][0]  # seen from behind, the sides swap


def test_out_of_frame_joints_keep_their_projection_with_zero_confidence():
    base = _scene_at(1.2)  # so close that the legs leave the frame
    frames = render_frames(random_character(2), base, rest_angles()[None])
    kp = frames.keypoints[0]
    outside = (kp[:, 1] >= 96) | (kp[:, 1] < 0) | (kp[:, 0] < 0) | (kp[:, 0] >= 64)
    assert outside[BODY_NAMES.index("right_ankle")]
    assert np.all(kp[outside, 2] == 0.0) and np.all(kp[outside, :2] != 0.0)


def test_same_seeds_same_video_and_each_seed_changes_its_part():
    a = render_sample(1, 2, 3, num_frames=2, width=32, height=48)
    b = render_sample(1, 2, 3, num_frames=2, width=32, height=48)
    for name in ("rgb", "depth", "normal", "keypoints"):
        np.testing.assert_array_equal(getattr(a.clip, name), getattr(b.clip, name))
    other_character = render_sample(9, 2, 3, num_frames=2, width=32, height=48)
    assert other_character.character.body != a.character.body
    assert not np.array_equal(other_character.clip.rgb, a.clip.rgb)
    np.testing.assert_allclose(other_character.motion.angles(np.arange(3.0)), a.motion.angles(np.arange(3.0)))
    other_motion = render_sample(1, 9, 3, num_frames=2, width=32, height=48)
    assert not np.allclose(other_motion.clip.keypoints, a.clip.keypoints)
    np.testing.assert_array_equal(other_motion.reference.rgb, a.reference.rgb)  # same character, scene, rest pose


def test_body_proportions_and_clothes_vary_between_characters():
    characters = [random_character(seed) for seed in range(12)]
    heights = np.array([c.body.height for c in characters])
    arm_ratio = np.array([c.body.upper_arm / c.body.height for c in characters])
    girth = np.array([c.body.r_thigh / c.body.height for c in characters])
    assert heights.std() > 0.05 and np.ptp(arm_ratio) > 0.02 and np.ptp(girth) / girth.mean() > 0.2
    tops = np.array([c.colours[Part.CHEST] for c in characters])
    assert np.ptp(tops, axis=0).max() > 0.3


def test_motions_move_within_joint_limits_for_every_style():
    low, high = np.array([DOF_LIMITS[name] for name in DOFS]).T
    for seed, style in enumerate(STYLES):
        motion = random_motion(seed, style)
        angles = motion.frames(30, fps=15.0)
        assert motion.style == style and angles.shape == (30, len(DOFS))
        assert np.all(angles >= low) and np.all(angles <= high)
        assert np.ptp(angles, axis=0).max() > 0.3, f"{style} barely moves"
        assert np.abs(np.diff(angles, axis=0)).max() < 1.0, f"{style} jumps between frames"
    with pytest.raises(MotionError, match="unknown motion style"):
        random_motion(0, "moonwalk")
