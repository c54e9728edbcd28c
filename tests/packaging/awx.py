"""What AWX does with a survey spec and a launch, for the example project's tests.

Written from AWX's own rules (awx/api/views JobTemplateSurveySpec._validate_spec_data for the spec,
awx/main/models/mixins.py SurveyJobTemplateMixin for defaults and answers): AWX itself is not
installable here, and these rules decide which types the playbook receives.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

# Question type -> Python types AWX accepts for its default (and, for numbers, its answers).
QUESTION_TYPES = {
    "text": (str,),
    "textarea": (str,),
    "password": (str,),
    "multiplechoice": (str,),
    "multiselect": (str,),
    "integer": (int,),
    "float": (float, int),
}


class SurveyError(ValueError):
    """The spec or an answer would be refused by AWX."""


def choices(question: Mapping[str, Any]) -> List[str]:
    """A question's choices; AWX takes a list or newline-separated text."""
    raw = question.get("choices", [])
    if isinstance(raw, str):
        return [line for line in raw.splitlines() if line.strip()]
    return list(raw)


def _defaults(question: Mapping[str, Any]) -> List[str]:
    raw = question.get("default", "")
    return [line for line in raw.splitlines() if line.strip()] if isinstance(raw, str) else list(raw)


def validate_spec(spec: Mapping[str, Any]) -> None:
    """Raise SurveyError where AWX's survey_spec endpoint would answer 400."""
    for field, kind in (("name", str), ("description", str), ("spec", list)):
        if not isinstance(spec.get(field), kind):
            raise SurveyError("survey %r must be a %s" % (field, kind.__name__))
    if not spec["spec"]:
        raise SurveyError("survey 'spec' has no questions")
    seen = set()
    for index, question in enumerate(spec["spec"]):
        where = "question %d (%s)" % (index, question.get("variable"))
        for field, kind in (("type", str), ("question_name", str), ("variable", str), ("required", bool)):
            if not isinstance(question.get(field), kind):
                raise SurveyError("%s: %r must be a %s" % (where, field, kind.__name__))
        if question["variable"] in seen:
            raise SurveyError("%s: variable used twice" % where)
        seen.add(question["variable"])
        qtype = question["type"]
        if qtype not in QUESTION_TYPES:
            raise SurveyError("%s: type %r is not one of %s" % (where, qtype, sorted(QUESTION_TYPES)))
        default = question.get("default", "")
        # bool is an int in Python, and AWX would take True for an integer default; no survey wants that.
        if default != "" and (isinstance(default, bool) or not isinstance(default, QUESTION_TYPES[qtype])):
            raise SurveyError("%s: default %r is not a valid %s" % (where, default, qtype))
        for key in ("min", "max"):
            if question.get(key) is not None and not isinstance(question[key], int):
                raise SurveyError("%s: %r must be an integer" % (where, key))
        if qtype in ("multiplechoice", "multiselect"):
            if not choices(question):
                raise SurveyError("%s: a %s question needs choices" % (where, qtype))
            defaults = _defaults(question)
            if qtype == "multiplechoice" and len(defaults) > 1:
                raise SurveyError("%s: a multiplechoice question has one default" % where)
            if any(item not in choices(question) for item in defaults):
                raise SurveyError("%s: default %r is not among the choices" % (where, defaults))


def answer_errors(question: Mapping[str, Any], data: Mapping[str, Any]) -> List[str]:
    """AWX's check of one question against launch data (an empty list: accepted)."""
    name = question["variable"]
    if name not in data:
        return ["%s: value missing" % name] if question["required"] else []
    value = data[name]
    qtype = question["type"]
    low, high = question.get("min"), question.get("max")
    low = None if low in ("", None) else low
    high = None if high in ("", None) else high
    if qtype in ("text", "textarea", "password"):
        if not isinstance(value, str):
            return ["%s: %r is not a string" % (name, value)]
        measured: Any = len(value)
    elif qtype == "integer":
        # AWX compares exact types: True is an int to Python but not an answer to AWX.
        if isinstance(value, bool) or not isinstance(value, int):
            return ["%s: %r is not an integer" % (name, value)]
        measured = value
    elif qtype == "float":
        if isinstance(value, bool) or not isinstance(value, (float, int)):
            return ["%s: %r is not a number" % (name, value)]
        measured = value
    elif qtype == "multiselect":
        if not isinstance(value, list):
            return ["%s: %r is not a list" % (name, value)]
        bad = [item for item in value if item not in choices(question)]
        return ["%s: %r not among the choices" % (name, bad)] if bad else []
    else:  # multiplechoice
        return [] if value in choices(question) else ["%s: %r not among the choices" % (name, value)]
    errors = []
    if low is not None and measured < low:
        errors.append("%s: %r is below the minimum %s" % (name, value, low))
    if high is not None and measured > high:
        errors.append("%s: %r is above the maximum %s" % (name, value, high))
    return errors


def launch_extra_vars(spec: Mapping[str, Any], answers: Optional[Mapping[str, Any]] = None,
                      template_extra_vars: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The extra vars of a job launched with these survey answers.

    Template extra vars, overridden by the survey defaults AWX accepts (a default that fails its own
    question's check, such as "" for a number, is left out), overridden by the answers. An answer
    AWX would refuse raises SurveyError.
    """
    answers = dict(answers or {})
    errors = [error for question in spec["spec"] for error in answer_errors(question, answers)
              if question["variable"] in answers]
    if errors:
        raise SurveyError("; ".join(errors))
    extra_vars = dict(template_extra_vars or {})
    for question in spec["spec"]:
        default = question.get("default")
        if default is not None and not answer_errors(question, {question["variable"]: default}):
            extra_vars[question["variable"]] = default
    extra_vars.update(answers)
    missing = [error for question in spec["spec"] for error in answer_errors(question, extra_vars)
               if question["variable"] not in extra_vars]
    if missing:
        raise SurveyError("; ".join(missing))
    return extra_vars
