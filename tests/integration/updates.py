"""Building update objects for tests (the fake server assigns update_id)."""

_mid = [0]


def _next_mid():
    _mid[0] += 1
    return _mid[0]


def user(uid):
    return {"id": uid, "is_bot": False, "first_name": "User%d" % uid}


def message(chat_id, text, user_id=None, kind="message"):
    uid = user_id if user_id is not None else (chat_id if chat_id > 0 else 100001)
    chat = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
    if chat_id < 0:
        chat["title"] = "Group %d" % -chat_id
    else:
        chat["first_name"] = "User%d" % chat_id
    msg = {"message_id": _next_mid(), "from": user(uid), "chat": chat,
           "date": 1700000000, "text": text}
    if kind == "edited_message":
        msg["edit_date"] = 1700000001
    return {kind: msg}


def callback_query(chat_id, data="btn", user_id=None):
    uid = user_id if user_id is not None else (chat_id if chat_id > 0 else 100001)
    m = message(chat_id, "menu", uid)["message"]
    return {"callback_query": {"id": "cq%d" % _next_mid(), "from": user(uid),
                               "message": m, "chat_instance": "ci1", "data": data}}
