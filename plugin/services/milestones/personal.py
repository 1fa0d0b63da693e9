"""A member's milestone data for the privacy requests: what an export shows, and what a redaction removes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update

from plugin.models import ActionCompletion, MemberBirthday, SurveyAnswer


def export(session, shop_id: int, member_id: int) -> dict[str, Any]:
    """The birthday, the actions completed and the survey answers we hold about one member."""
    birthday = session.get(MemberBirthday, (shop_id, member_id))
    completions = session.scalars(
        select(ActionCompletion)
        .where(ActionCompletion.shop_id == shop_id, ActionCompletion.member_id == member_id)
        .order_by(ActionCompletion.completed_at)
    )
    answers = session.scalars(
        select(SurveyAnswer)
        .where(SurveyAnswer.shop_id == shop_id, SurveyAnswer.member_id == member_id)
        .order_by(SurveyAnswer.answered_at)
    )
    return {
        "birthday": {"month": birthday.month, "day": birthday.day, "source": birthday.source} if birthday else None,
        "actions": [
            {
                "action": c.action_id,
                "points": c.points,
                "channel": c.channel,
                "completed_at": c.completed_at.isoformat(),
            }
            for c in completions
        ],
        "survey_answers": [
            {
                "survey": a.survey_id,
                "question": a.question_key,
                "score": a.score,
                "answer": a.answer,
                "answered_at": a.answered_at.isoformat(),
            }
            for a in answers
        ],
    }


def redact(session, shop_id: int, member_id: int) -> dict[str, int]:
    """Remove the birthday and the words of survey answers; 0-10 scores stay, under the anonymised member."""
    birthdays = session.execute(
        delete(MemberBirthday)
        .where(MemberBirthday.shop_id == shop_id, MemberBirthday.member_id == member_id)
        .execution_options(synchronize_session=False)
    ).rowcount
    answers = session.execute(
        update(SurveyAnswer)
        .where(SurveyAnswer.shop_id == shop_id, SurveyAnswer.member_id == member_id, SurveyAnswer.answer.is_not(None))
        .values(answer=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    return {"birthdays_erased": birthdays, "survey_answers_erased": answers}
