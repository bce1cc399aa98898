"""Who is who: a PSA member is one of our users when an admin linked them (by the member's
login identifier), or else when the member's email is the user's email."""

from __future__ import annotations

from sqlalchemy import delete, select

from models.accounts import normalize_email
from models.db import db, transaction
from models.entities import PsaMemberLink, User
from models.errors import Forbidden, ValidationFailed


def _require_admin(user: User) -> None:
    if user.role != "admin":
        raise Forbidden("Only an admin may map PSA members to users.")


def _clean(psa_member: str) -> str:
    member = psa_member.strip().lower()
    if not member or len(member) > 100:
        raise ValidationFailed(
            "The PSA member is not valid.", {"psa_member": ["1-100 characters: the login name."]}
        )
    return member


def links(admin: User) -> list[PsaMemberLink]:
    _require_admin(admin)
    return list(
        db.session.scalars(
            select(PsaMemberLink)
            .where(PsaMemberLink.account_id == admin.account_id)
            .order_by(PsaMemberLink.psa_member)
        )
    )


def link(admin: User, psa_member: str, email: str) -> PsaMemberLink:
    """Map the PSA member to the account's user with this email (replacing any mapping)."""
    _require_admin(admin)
    member = _clean(psa_member)
    user = db.session.scalar(
        select(User).where(
            User.account_id == admin.account_id, User.email == normalize_email(email)
        )
    )
    if user is None:
        raise ValidationFailed(
            "No user of this account has that email.", {"email": ["Not a user of this account."]}
        )
    with transaction(expire_on_commit=False):
        row = db.session.scalar(
            select(PsaMemberLink).where(
                PsaMemberLink.account_id == admin.account_id, PsaMemberLink.psa_member == member
            )
        ) or PsaMemberLink(account_id=admin.account_id, psa_member=member)
        row.user = user
        db.session.add(row)
    return row


def unlink(admin: User, psa_member: str) -> None:
    _require_admin(admin)
    with transaction():
        db.session.execute(
            delete(PsaMemberLink).where(
                PsaMemberLink.account_id == admin.account_id,
                PsaMemberLink.psa_member == psa_member.strip().lower(),
            )
        )


def linked_users(account_id: int) -> dict[str, int]:
    """PSA member identifier (lower case) → user id, for one account."""
    rows = db.session.execute(
        select(PsaMemberLink.psa_member, PsaMemberLink.user_id).where(
            PsaMemberLink.account_id == account_id
        )
    ).all()
    return {member: user_id for member, user_id in rows}
