/* Checking one control request line: JSON, protocol version, command and its arguments. */
#include "control.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

static const char *const cmd_names[] = {
	[CONTROL_STATUS] = "status",
	[CONTROL_WORKERS] = "workers",
	[CONTROL_RELOAD] = "reload",
	[CONTROL_PAUSE] = "pause",
	[CONTROL_RESUME] = "resume",
	[CONTROL_DEAD_LETTERS] = "dead-letters",
	[CONTROL_FIBERS] = "fibers",
};
#define NCMDS (sizeof(cmd_names) / sizeof(cmd_names[0]))

static const char *const dead_actions[] = {
	[CONTROL_DEAD_LIST] = "list",
	[CONTROL_DEAD_SHOW] = "show",
	[CONTROL_DEAD_RETRY] = "retry",
	[CONTROL_DEAD_DROP] = "drop",
};
#define NACTIONS (sizeof(dead_actions) / sizeof(dead_actions[0]))

static const char *parse_args(const json_t *j, struct control_req *req);
static const char *parse_dead(const json_t *j, struct control_req *req);

int
control_parse(const char *line, size_t len, struct control_req *req, char *err,
    size_t errlen)
{
	const char *name, *msg = NULL;
	json_error_t je;
	json_t *j, *v;
	size_t i;

	memset(req, 0, sizeof(*req));
	if (len > CONTROL_MAX_LINE) {
		snprintf(err, errlen, "request line longer than %d bytes", CONTROL_MAX_LINE);
		return -1;
	}
	if ((j = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je)) == NULL) {
		snprintf(err, errlen, "not JSON: %s", je.text);
		return -1;
	}
	v = json_object_get(j, "v");
	name = json_string_value(json_object_get(j, "cmd"));
	if (!json_is_object(j)) {
		msg = "a request is a JSON object {\"v\":1,\"cmd\":...}";
	} else if (!json_is_integer(v) || json_integer_value(v) != CONTROL_VERSION) {
		msg = "unsupported protocol version (accepted: \"v\":1)";
	} else if (name == NULL) {
		msg = "\"cmd\" missing or not a string";
	} else {
		for (i = 0; i < NCMDS; i++)
			if (strcmp(name, cmd_names[i]) == 0)
				break;
		if (i == NCMDS) {
			msg = "unknown command (accepted: status, workers, reload, pause, "
			    "resume, dead-letters, fibers)";
		} else {
			req->cmd = (enum control_cmd)i;
			msg = parse_args(j, req);
		}
	}
	json_decref(j);
	if (msg != NULL) {
		snprintf(err, errlen, "%s", msg);
		return -1;
	}
	return 0;
}

/* The arguments of req->cmd; NULL, or what is wrong. */
static const char *
parse_args(const json_t *j, struct control_req *req)
{
	const json_t *v;

	switch (req->cmd) {
	case CONTROL_DEAD_LETTERS:
		return parse_dead(j, req);
	case CONTROL_FIBERS:
		v = json_object_get(j, "worker");
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > INT_MAX)
			return "fibers: \"worker\" must be a worker slot number";
		req->worker = (int)json_integer_value(v);
		return NULL;
	default:
		return NULL;
	}
}

static const char *
parse_dead(const json_t *j, struct control_req *req)
{
	const json_t *a = json_object_get(j, "action"), *v = json_object_get(j, "id");
	size_t i = CONTROL_DEAD_LIST;

	if (a != NULL) {
		for (i = 0; i < NACTIONS; i++)
			if (json_is_string(a) && strcmp(json_string_value(a), dead_actions[i]) == 0)
				break;
		if (i == NACTIONS)
			return "dead-letters: unknown action (accepted: list, show, retry, drop)";
	}
	req->action = (enum control_dead_action)i;
	if (req->action == CONTROL_DEAD_LIST)
		return NULL;
	if (req->action != CONTROL_DEAD_SHOW && json_is_string(v) &&
	    strcmp(json_string_value(v), "all") == 0) {
		req->id = STATUS_ALL;
		return NULL;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return req->action == CONTROL_DEAD_SHOW ?
		    "dead-letters: \"id\" must be an update id" :
		    "dead-letters: \"id\" must be an update id or \"all\"";
	req->id = json_integer_value(v);
	return NULL;
}
