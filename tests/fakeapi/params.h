/* Request parameters: query string, JSON, urlencoded and multipart bodies as one JSON object. */
#ifndef FAKEAPI_PARAMS_H
#define FAKEAPI_PARAMS_H

#include <stddef.h>
#include <event2/http.h>
#include <jansson.h>

struct params_file {
	char *field;
	char *filename;
	char *content_type;
	char *data;
	size_t size;
};

struct params {
	json_t *obj;			/* every parameter; file parts as {"file","size"} */
	struct params_file *files;
	int nfiles;
	/* the request's JSON body text when it alone holds every parameter:
	 * recorded as is, which spares a serialisation per call; it points into the
	 * request's input buffer, so it lives as long as the request */
	const char *raw;
	size_t raw_len;
};

/* Parse the query (may be NULL) and the body of req. 0, or -1 with err. */
int params_parse(struct evhttp_request *req, const char *query, struct params *p,
    char *err, size_t errlen);
void params_free(struct params *p);
/* A parameter as text (strings as they are, numbers printed); NULL if absent. */
const char *params_str(const struct params *p, const char *key, char *tmp, size_t tmplen);
const struct params_file *params_file(const struct params *p, const char *field);

#endif
