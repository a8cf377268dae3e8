/* What both ends of the agent protocol do with a control payload (agent_proto.h). */
#include "isolation/agent_proto.h"

json_object *agent_parse_object(const uint8_t *p, size_t len)
{
	json_tokener *tok = json_tokener_new();
	if (!tok)
		return NULL;
	json_object *o = json_tokener_parse_ex(tok, (const char *)p, (int)len);
	bool complete = json_tokener_get_error(tok) == json_tokener_success && json_tokener_get_parse_end(tok) == len;
	json_tokener_free(tok);
	if (!o || !complete || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}
