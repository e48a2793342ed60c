"""The vectorised DBSCAN gives scikit-learn's labels exactly, ties included."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.cluster import DBSCAN

from cryosift.outliers.dbscan import dbscan_batch

# Integer pixel positions on a small grid make exact ties (distance == eps, equal points) common.
point_sets = st.integers(1, 16).flatmap(
    lambda n: arrays(np.int64, (n, 2), elements=st.integers(0, 9))
)


@settings(max_examples=600, deadline=None)
@given(
    points=point_sets,
    eps=st.one_of(st.integers(1, 6).map(float), st.floats(0.5, 6.0)),
    min_samples=st.integers(1, 6),
)
def test_labels_equal_sklearn(points, eps, min_samples):
    pts = points.astype(float)
    expected = DBSCAN(eps=eps, min_samples=min_samples).fit_predict(pts)
    got = dbscan_batch(pts[None], eps, min_samples)[0]
    np.testing.assert_array_equal(got, expected)


@settings(max_examples=50, deadline=None)
@given(batch=arrays(np.int64, (7, 10, 2), elements=st.integers(0, 20)))
def test_batch_is_independent_per_set(batch):
    pts = batch.astype(float)
    got = dbscan_batch(pts, 3.0, 3)
    for b in range(len(pts)):
        np.testing.assert_array_equal(got[b], DBSCAN(eps=3.0, min_samples=3).fit_predict(pts[b]))


def test_border_point_goes_to_first_cluster():
    # x = 3 is a border point within eps of core points of both clusters ({5..8} and {-2..1});
    # sklearn gives it to the cluster found first: the one holding the lowest-index core point.
    xs = [5, 6, 7, 8, 3, -2, -1, 0, 1]
    pts = np.array([[0, x] for x in xs], float)
    expected = DBSCAN(eps=2.0, min_samples=4).fit_predict(pts)
    got = dbscan_batch(pts[None], 2.0, 4)[0]
    np.testing.assert_array_equal(got, expected)
    assert got[4] == got[0] == 0 and got[8] == 1
