/* SPDX-License-Identifier: MIT */
/* pcpmap's miniupnpc-compatible API: the name/value pairs of a SOAP answer, as miniupnpc's upnpreplyparse.h. */
#ifndef UPNPREPLYPARSE_H_INCLUDED
#define UPNPREPLYPARSE_H_INCLUDED

#include "miniupnpc_declspec.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One element of the answer: its name (namespace prefix removed) and its text. */
struct NameValue {
	struct NameValue *l_next;
	char name[64];
	char value[128];
};

/** The parsed answer. Zero it before ParseNameValue(); free it with ClearNameValueList(). */
struct NameValueParserData {
	struct NameValue *l_head;
	char curelt[64];       /**< parser state */
	char *portListing;     /**< the NewPortListing element's text, raw (malloc'ed), or NULL */
	int portListingLength; /**< its length */
	int topelt;            /**< parser state */
	const char *cdata;     /**< parser state */
	int cdatalen;          /**< parser state */
};

/**
 * Parses an XML document of bufsize bytes (a SOAP answer) into data: one NameValue per element that holds text
 * directly, names longer than 63 bytes and values longer than 127 bytes truncated. data is overwritten (zero it
 * first, or clear it). Malformed input gives what could be read; nothing outside buffer is read.
 */
void ParseNameValue(const char *buffer, int bufsize, struct NameValueParserData *data)
    PCPMAP_COMPAT_UPNP_LINK(ParseNameValue);

/** Frees the pairs and portListing of data. Accepts NULL. */
void ClearNameValueList(struct NameValueParserData *pdata) PCPMAP_COMPAT_UPNP_LINK(ClearNameValueList);

/** The value of the first element called Name, or NULL. The string belongs to pdata. */
char *GetValueFromNameValueList(struct NameValueParserData *pdata, const char *Name)
    PCPMAP_COMPAT_UPNP_LINK(GetValueFromNameValueList);

#ifdef __cplusplus
}
#endif

#endif
