"""Survey answers as the admin reads them: the latest answers and, per 0-10 question, the Net Promoter Score."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import case, func, select

from plugin.models import SurveyAnswer
from plugin.services.errors import Invalid

LATEST = 200
SURVEY_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")  # an action's id (programme/milestone_settings.py)


def nps(promoters: int, detractors: int, answers: int) -> int | None:
    """% promoters (9-10) minus % detractors (0-6), rounded half away from zero; None without answers."""
    if answers == 0:
        return None
    score = (promoters - detractors) * 100 / answers
    return int(score + (0.5 if score >= 0 else -0.5))


def summary(session, shop_id: int, survey_id: str) -> dict[str, Any]:
    if not SURVEY_ID.fullmatch(survey_id):  # a NUL reached the query and was a 500
        raise Invalid("not a survey id", {"survey_id": ["lowercase letters, digits, - and _ (1 to 40)"]})
    rows = session.scalars(
        select(SurveyAnswer)
        .where(SurveyAnswer.shop_id == shop_id, SurveyAnswer.survey_id == survey_id)
        .order_by(SurveyAnswer.answered_at.desc())
        .limit(LATEST)
    )
    answers = [
        {"member_id": r.member_id, "question": r.question_key, "score": r.score, "answer": r.answer,
         "answered_at": r.answered_at.isoformat()}
        for r in rows
    ]  # fmt: skip
    counted = session.execute(
        select(
            SurveyAnswer.question_key,
            func.count(),
            func.sum(case((SurveyAnswer.score >= 9, 1), else_=0)),
            func.sum(case((SurveyAnswer.score <= 6, 1), else_=0)),
        )
        .where(SurveyAnswer.shop_id == shop_id, SurveyAnswer.survey_id == survey_id, SurveyAnswer.score.is_not(None))
        .group_by(SurveyAnswer.question_key)
    ).all()
    scores = {
        key: {
            "answers": n,
            "promoters": int(p or 0),
            "detractors": int(d or 0),
            "score": nps(int(p or 0), int(d or 0), n),
        }
        for key, n, p, d in counted
    }
    return {"answers": answers, "nps": scores}
