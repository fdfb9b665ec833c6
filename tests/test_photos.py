"""Photos of the problem: checked by content, re-encoded, kept from strangers, attached once.

Real parts: the wizard through the test client, files in a real instance folder, the HCP
sandbox over HTTP (with its fault injection) receiving the attachments.
"""

from __future__ import annotations

import hashlib
import html
import io
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given
from hypothesis import settings as examples  # `settings` is a fixture here
from hypothesis import strategies as st
from PIL import Image
from sqlalchemy import func, select

from hcpform import jobs, photos, submissions
from hcpform.extensions import db
from hcpform.models import Photo, Status, Submission
from hcpform.storage import get_store
from hcpform.timeutil import utcnow
from tests import images
from tests.factories import default_form, make_submission
from tests.helpers import Wizard, action_of, person, step_data

pytest_plugins = ["tests.admin_fixtures"]

AUTH = {"Authorization": "Token sandbox-key"}


@pytest.fixture
def settings(settings: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The test's settings, with a photo store that `flask worker` subprocesses share."""
    return {**settings, "PHOTO_STORAGE_DIR": str(tmp_path / "photo-store")}


def to_description(client: Any) -> Wizard:
    """Walk the wizard to step 3 (the photo step)."""
    wizard = Wizard(client)
    wizard.open()
    answers = person()
    for step in ("location", "service"):
        assert wizard.post(answers[step]).status_code == 200
    assert 'enctype="multipart/form-data"' in wizard.page
    return wizard


def post_photos(wizard: Wizard, files: list[tuple[bytes, str]], **data: str) -> Any:
    """Post step 3 with these files (and the answers), as a browser without JavaScript does."""
    fields = {"booking_reason": "Water under the sink.", "special_instructions": "", **data}
    uploads = [(io.BytesIO(content), name) for content, name in files]
    return wizard.post({**fields, "photos": uploads}, follow=True)


def stored(app: Any) -> list[Photo]:
    with app.app_context():
        return list(db.session.scalars(select(Photo).order_by(Photo.id)))


def photo_dir(app: Any) -> Path:
    return Path(app.config["PHOTO_STORAGE_DIR"])


def error_text(page: str) -> str:
    match = re.search(r'<div id="photos-error">(.*?)</div>', page, re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))) if match else ""


# --------------------------------------------------------------------------- the wizard


def test_a_phone_photo_loses_its_gps_and_is_at_most_2560_px(app, client):
    wizard = to_description(client)
    original = images.jpeg_with_gps((4000, 3000), orientation=6)  # held sideways
    assert images.has_exif(original)
    response = post_photos(wizard, [(original, "IMG_0001.JPG")])
    assert response.status_code == 200 and "How can we reach you?" in wizard.page
    [photo] = stored(app)
    with app.app_context():
        data = get_store().get(photo.stored_name)
    assert not images.has_exif(data)
    assert b"Exif" not in data and b"Model 15" not in data
    with Image.open(io.BytesIO(data)) as out:
        assert out.format == "JPEG"
        assert out.size == (1920, 2560)  # turned upright by the EXIF orientation, then scaled
    assert photo.sha256 == hashlib.sha256(data).hexdigest() and photo.size == len(data)
    static = Path(__file__).resolve().parent.parent / "static"
    assert photo_dir(app).exists() and static not in photo_dir(app).parents


@pytest.mark.parametrize(
    ("fmt", "name"), [("PNG", "screen.png"), ("WEBP", "photo.webp"), ("HEIF", "IMG_0002.HEIC")]
)
def test_png_webp_and_iphone_heic_are_taken_as_jpeg(app, client, fmt, name):
    wizard = to_description(client)
    response = post_photos(wizard, [(images.encoded(fmt), name)])
    assert response.status_code == 200 and "How can we reach you?" in wizard.page
    [photo] = stored(app)
    with app.app_context(), Image.open(io.BytesIO(get_store().get(photo.stored_name))) as out:
        assert out.format == "JPEG" and out.size == (800, 600)


BAD = {
    "a renamed program": (images.executable, "photo.jpg", "isn't a photo we can read"),
    "an empty file": (lambda: b"", "empty.jpg", "This file is empty"),
    "a 40 MB file": (lambda: images.big_file(40), "huge.jpg", "larger than 10 MB"),
    "a decompression bomb": (images.bomb, "bomb.png", "too many pixels"),
    "a bomb under Pillow's own limit": (lambda: images.bomb(8500), "b.png", "too many pixels"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_files_get_a_message_by_the_field_and_keep_the_answers(app, client, case):
    make, name, message = BAD[case]
    wizard = to_description(client)
    response = post_photos(wizard, [(make(), name)], booking_reason="Pipe burst in the basement")
    assert response.status_code == 400
    assert message in error_text(wizard.page) and name in error_text(wizard.page)
    assert 'href="#photos"' in wizard.page  # in the error summary too, linking to the input
    assert "Pipe burst in the basement</textarea>" in wizard.page  # the other answer is kept
    assert stored(app) == []
    assert not photo_dir(app).exists() or not any(photo_dir(app).glob("*.jpg"))


def test_a_sixth_photo_is_refused_and_the_five_kept(app, client):
    wizard = to_description(client)
    five = [(images.encoded("JPEG", (300, 200)), f"p{i}.jpg") for i in range(5)]
    assert post_photos(wizard, five, photo_action="add").status_code == 200
    assert len(stored(app)) == 5
    assert "data-photo-add hidden" in wizard.page  # no file input once full
    response = post_photos(wizard, [(images.encoded("JPEG", (300, 200)), "six.jpg")])
    assert response.status_code == 400
    assert "up to 5 photos" in error_text(wizard.page)
    assert "Water under the sink." in wizard.page
    assert len(stored(app)) == 5


def test_without_javascript_add_and_remove_stay_on_the_step(app, client):
    wizard = to_description(client)
    files = [(images.encoded("JPEG"), "a.jpg"), (images.encoded("PNG"), "b.png")]
    response = post_photos(wizard, files, photo_action="add", booking_reason="Dripping tap")
    assert response.status_code == 200 and "Tell us about the problem" in wizard.page
    assert "Dripping tap</textarea>" in wizard.page and "2 of 5 photos added" in wizard.page
    first, second = stored(app)
    assert f'name="remove_photo" value="{first.key}"' in wizard.page
    response = post_photos(wizard, [], remove_photo=first.key, booking_reason="Dripping tap")
    assert response.status_code == 200 and "Dripping tap</textarea>" in wizard.page
    assert [p.key for p in stored(app)] == [second.key]
    assert not (photo_dir(app) / first.stored_name).exists()
    assert not (photo_dir(app) / first.thumb_name).exists()
    assert post_photos(wizard, []).status_code == 200 and "How can we reach you?" in wizard.page


def test_only_the_photo_step_takes_big_bodies(app, client):
    wizard = Wizard(client)
    wizard.open()
    response = client.post(action_of(wizard.page), data={"zip": "60614", "x": "y" * 100_000})
    assert response.status_code == 413  # every other step keeps the 64 KB limit
    wizard = to_description(client)
    response = post_photos(wizard, [(images.jpeg_with_gps((5000, 4000)), "big.jpg")])
    assert response.status_code == 200 and len(stored(app)) == 1


def test_javascript_upload_remove_and_thumbnails_for_the_owner_only(app, client):
    wizard = to_description(client)
    token, csrf = wizard.token, re.search(r'name="csrf_token"[^>]*value="([^"]+)"', wizard.page)
    base = f"/f/service-request/photos?d={token}"
    good = {"csrf_token": html.unescape(csrf.group(1))}
    webp = (io.BytesIO(images.encoded("WEBP")), "w.webp")
    response = client.post(base, data={**good, "photos": webp})
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["count"] == 1 and body["thumb"].startswith("/f/service-request/photos/")
    thumb = client.get(body["thumb"])
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"
    with Image.open(io.BytesIO(thumb.data)) as small:
        assert max(small.size) <= 320
    stranger = app.test_client()  # no cookie, no token: nothing
    assert stranger.get(body["thumb"].split("?")[0]).status_code == 404
    other = Wizard(app.test_client())
    other.open()
    other.post(person()["location"])
    assert stranger.get(body["thumb"].split("?")[0] + f"?d={other.token}").status_code == 404
    bad = client.post(base, data={**good, "photos": (io.BytesIO(images.executable()), "x.jpg")})
    assert bad.status_code == 400 and "isn't a photo" in bad.get_json()["error"]
    forged = client.post(base, data={"csrf_token": "x", "photos": (io.BytesIO(b"x"), "x.jpg")})
    assert forged.status_code == 400 and "expired" in forged.get_json()["error"]
    removed = client.post(
        f"/f/service-request/photos/{body['key']}/remove?d={token}", data=good
    ).get_json()
    assert removed == {"removed": True, "count": 0}
    assert stored(app) == []


def test_review_shows_thumbnails_and_the_submission_owns_the_photos(app, client):
    wizard = to_description(client)
    post_photos(wizard, [(images.encoded("JPEG"), "a.jpg")])
    answers = person()
    for step in ("contact", "classification", "schedule"):
        assert wizard.post(step_data(wizard.page, step, answers)).status_code == 200
    assert "data-review-photos" in wizard.page
    thumb = re.search(r'<img class="photo-thumb" src="([^"]+)"', wizard.page).group(1)
    assert client.get(html.unescape(thumb)).status_code == 200
    wizard.post({})
    [photo] = stored(app)
    with app.app_context():
        sub = db.session.scalar(select(Submission))
        assert photo.submission_id == sub.id and photo.attach_state == photos.WAITING


# --------------------------------------------------------------------------- HCP


def submission_with_photo(count: int = 1) -> tuple[Submission, list[Photo]]:
    """A pending submission with photos, made through the same code as the wizard's."""
    form = default_form()
    draft = submissions.start_draft(form, now=utcnow(), source="hosted", attribution={}, prefill={})
    added = [photos.add_photo(draft, io.BytesIO(images.encoded("JPEG"))) for _ in range(count)]
    sub = make_submission(draft_id=draft.id)
    photos.hand_over(draft, sub)
    db.session.commit()
    return sub, added


def sandbox_job(sandbox: Any) -> dict[str, Any]:
    [job] = requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()["jobs"]
    return job


def attachment_posts(sandbox: Any) -> int:
    log = requests.get(f"{sandbox.url}/_sandbox/requests", timeout=5).json()["requests"]
    return sum(1 for e in log if e["method"] == "POST" and e["path"].endswith("/attachments"))


def fault(sandbox: Any, **rule: Any) -> None:
    rule = {"method": "POST", "path": "/jobs/{job_id}/attachments", **rule}
    requests.post(f"{sandbox.url}/_sandbox/faults", json={"rules": [rule]}, timeout=5)


def make_due(sub_id: int) -> None:
    db.session.execute(
        Photo.__table__.update()
        .where(Photo.submission_id == sub_id)
        .values(next_attach_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()


def test_photos_go_to_the_hcp_job_once_with_our_name(app_ctx, sandbox):
    sub, added = submission_with_photo(2)
    assert jobs.sync_submission(sub.id) == "synced"
    assert jobs.attach_photos(sub.id) == "done"
    assert jobs.attach_photos(sub.id) == "nothing to attach"  # a second run sends nothing
    job = sandbox_job(sandbox)
    assert len(job["attachments"]) == 2 and attachment_posts(sandbox) == 2
    for photo, sent in zip(photos.submission_photos(sub.id), job["attachments"], strict=True):
        assert sent["file_name"] == f"{sub.reference}-photo-{photo.position}-{photo.key}.jpg"
        assert sent["sha256"] == photo.sha256 and sent["file_type"] == "image/jpeg"
        assert photo.attach_state == photos.ATTACHED and photo.hcp_attachment_id == sent["id"]


@pytest.mark.parametrize("kind", ["commit_then_drop", "commit_then_500", "timeout"])
def test_a_lost_answer_is_looked_for_before_sending_again(app_ctx, sandbox, kind):
    sub, [photo] = submission_with_photo()
    assert jobs.sync_submission(sub.id) == "synced"
    fault(sandbox, kind=kind, seconds=3)
    assert jobs.attach_photos(sub.id) == "retry"
    db.session.refresh(photo)
    assert photo.attach_state == photos.RETRYING and photo.attach_sent
    make_due(sub.id)
    assert jobs.attach_photos(sub.id) == "done"
    db.session.refresh(photo)
    assert photo.attach_state == photos.ATTACHED and photo.hcp_attachment_id
    assert len(sandbox_job(sandbox)["attachments"]) == 1
    assert attachment_posts(sandbox) == 1  # found by its name, never sent twice


def test_a_failing_attachment_leaves_the_job_synced_and_retries(app, sandbox, admin_client):
    with app.app_context():
        sub, [photo] = submission_with_photo()
        fault(sandbox, kind="503", times=2)
        assert jobs.sync_submission(sub.id) == "synced"
        assert jobs.attach_photos(sub.id) == "retry"
        sub = db.session.get(Submission, sub.id)
        assert sub.status == Status.SYNCED and sub.hcp_job_id
        db.session.refresh(photo)
        assert photo.attach_state == photos.RETRYING and "503" in photo.attach_error
        sub_id, key = sub.id, photo.key
    page = admin_client.get(f"/admin/submissions/{sub_id}").get_data(as_text=True)
    assert f'data-photo="{key}" data-attach-state="retrying"' in page and "Will retry" in page
    with app.app_context():
        make_due(sub_id)
        assert jobs.attach_photos(sub_id) == "retry"  # the second 503
        make_due(sub_id)
        assert jobs.attach_photos(sub_id) == "done"
    assert len(sandbox_job(sandbox)["attachments"]) == 1


def test_a_refused_attachment_fails_alone_and_can_be_sent_again(app, sandbox, admin_client):
    with app.app_context():
        sub, [photo] = submission_with_photo()
        fault(sandbox, kind="422")
        assert jobs.sync_submission(sub.id) == "synced"
        assert jobs.attach_photos(sub.id) == "done"
        db.session.refresh(photo)
        assert photo.attach_state == photos.FAILED
        assert db.session.get(Submission, sub.id).status == Status.SYNCED
        sub_id = sub.id
    page = admin_client.get(f"/admin/submissions/{sub_id}").get_data(as_text=True)
    assert "Send failed photos again" in page
    assert admin_client.post(f"/admin/submissions/{sub_id}/photos/retry").status_code == 303
    with app.app_context():
        assert jobs.attach_photos(sub_id) == "done"
    assert len(sandbox_job(sandbox)["attachments"]) == 1


def test_the_sandbox_checks_attachments_against_the_definition(sandbox):
    customer = requests.post(
        f"{sandbox.url}/customers",
        json={"first_name": "A", "addresses": [{"street": "1 Main St", "city": "Austin",
                                                "state": "TX", "zip": "78704"}]},
        headers=AUTH, timeout=5,
    ).json()  # fmt: skip
    job = requests.post(
        f"{sandbox.url}/jobs",
        json={"customer_id": customer["id"], "address_id": customer["addresses"][0]["id"]},
        headers=AUTH, timeout=5,
    ).json()  # fmt: skip
    url = f"{sandbox.url}/jobs/{job['id']}/attachments"
    ok = requests.post(url, files={"file": ("a.jpg", b"\xff\xd8\xff")}, headers=AUTH, timeout=5)
    assert ok.status_code == 202 and ok.json()["job_url"].endswith(job["id"])
    wrong = requests.post(url, files={"photo": ("a.jpg", b"x")}, headers=AUTH, timeout=5)
    assert wrong.status_code == 422 and "file" in wrong.json()["errors"]
    as_json = requests.post(url, json={"file": "x"}, headers=AUTH, timeout=5)
    assert as_json.status_code == 422
    listed = requests.get(
        f"{sandbox.url}/jobs/{job['id']}", params={"expand[]": "attachments"}, headers=AUTH,
        timeout=5,
    ).json()  # fmt: skip
    assert [a["file_name"] for a in listed["attachments"]] == ["a.jpg"]
    requests.delete(f"{sandbox.url}/_sandbox/requests", timeout=5)  # the bad ones were on purpose


# --------------------------------------------------------------------------- admin, privacy


def test_photos_are_served_to_signed_in_admins_only(app, client, admin_client):
    with app.app_context():
        sub, [photo] = submission_with_photo()
        key = photo.key
    for path in (f"/admin/photos/{key}", f"/admin/photos/{key}/thumb"):
        response = client.get(path)
        assert response.status_code == 303 and "/admin/login" in response.headers["Location"]
    assert client.get(f"/static/../instance/photos/{key}.jpg").status_code == 404
    response = admin_client.get(f"/admin/photos/{key}")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert response.headers["Cache-Control"] == "no-store"
    assert admin_client.get("/admin/photos/" + "0" * 32).status_code == 404


def test_privacy_erase_deletes_the_photos_and_their_files(app, admin_client):
    with app.app_context():
        sub, added = submission_with_photo(2)
        names = [n for p in added for n in (p.stored_name, p.thumb_name)]
    for name in names:
        assert (photo_dir(app) / name).exists()
    page = admin_client.post(
        "/admin/privacy/erase", data={"who": "jane.doe@example.com", "confirm": "y"}
    ).get_data(as_text=True)
    assert "2 photo(s) deleted" in page
    for name in names:
        assert not (photo_dir(app) / name).exists()
    with app.app_context():
        assert db.session.scalar(select(func.count(Photo.id))) == 0


def test_an_expired_drafts_photos_go_with_its_answers_but_a_submissions_stay(app):
    from hcpform import abandoned
    from hcpform.models import Draft

    with app.app_context():
        sent, kept = submission_with_photo(1)
        form = default_form()
        left = submissions.start_draft(
            form, now=utcnow(), source="hosted", attribution={}, prefill={}
        )
        lost = photos.add_photo(left, io.BytesIO(images.encoded("JPEG")))
        db.session.commit()
        later = max(d.expires_at for d in db.session.scalars(select(Draft))) + timedelta(seconds=1)
        gone = [lost.stored_name, lost.thumb_name]
        assert abandoned.erase_expired(now=later) == 2
        left_over = list(db.session.scalars(select(Photo)))
        assert [p.id for p in left_over] == [kept[0].id]
    for name in gone:
        assert not (photo_dir(app) / name).exists()
    assert (photo_dir(app) / kept[0].stored_name).exists()


# --------------------------------------------------------------------------- fuzz


@examples(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    content=st.one_of(
        st.binary(max_size=2048),
        st.sampled_from([b"\x89PNG\r\n\x1a\n" + bytes(40), b"\xff\xd8\xff\xe0" + bytes(64),
                         b"RIFF\x00\x00\x00\x00WEBPVP8 ", bytes(4) + b"ftypheic" + bytes(64)]),
    ),
    name=st.text(max_size=300),
    extra=st.dictionaries(st.sampled_from(["remove_photo", "photo_action", "photos"]),
                          st.text(max_size=80), max_size=3),
)  # fmt: skip
def test_anything_posted_as_a_photo_is_refused_cleanly(app, content, name, extra):
    client = app.test_client()  # a new visitor each time
    wizard = to_description(client)
    response = post_photos(wizard, [(content, name)], **extra)
    assert response.status_code in (200, 400), response.status_code
    token = wizard.token
    js = client.post(
        f"/f/service-request/photos?d={token}",
        data={"csrf_token": "x", "photos": (io.BytesIO(content), name), **extra},
    )
    assert js.status_code in (400, 404), js.status_code


def test_deleting_a_quarantined_request_deletes_its_photos(app, admin_client):
    with app.app_context():
        sub, added = submission_with_photo()
        sub.status = Status.QUARANTINED
        db.session.commit()
        sub_id, name = sub.id, added[0].stored_name
    assert admin_client.post(f"/admin/submissions/{sub_id}/delete").status_code == 303
    assert not (photo_dir(app) / name).exists() and stored(app) == []


def test_a_real_worker_syncs_then_attaches_the_photos(app, client, sandbox, start_worker):
    wizard = to_description(client)
    post_photos(wizard, [(images.jpeg_with_gps((1200, 900)), "leak.jpg")])
    answers = person()
    for step in ("contact", "classification", "schedule"):
        assert wizard.post(step_data(wizard.page, step, answers)).status_code == 200
    wizard.post({})
    assert start_worker("--burst").wait(timeout=90) == 0  # the sync, then the photos' job
    job = sandbox_job(sandbox)
    [photo] = stored(app)
    assert [a["sha256"] for a in job["attachments"]] == [photo.sha256]
    assert photo.attach_state == photos.ATTACHED
