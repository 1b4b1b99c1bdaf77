/*
 * fuzz_list_json: gcs_list_parse on an objects.list page, and
 * gcs_list_token agreeing with it wherever the parse succeeds.
 */
#include "gcs/gcs.h"

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gcs_list_page p;
	int rc = gcs_list_parse((const char *)data, size, &p);
	if (rc == 0) {
		FUZZ_ASSERT(p.items != NULL && p.prefixes != NULL);
		for (size_t i = 0; i < p.nitems; i++) {
			FUZZ_ASSERT(p.items[i].name != NULL);
			(void)strlen(p.items[i].name);
			FUZZ_ASSERT(p.items[i].mtime.tv_nsec >= 0 &&
				    p.items[i].mtime.tv_nsec < 1000000000L);
		}
		for (size_t i = 0; i < p.nprefixes; i++) {
			FUZZ_ASSERT(p.prefixes[i] != NULL);
			(void)strlen(p.prefixes[i]);
		}
		/* An empty token means "last page" and is dropped. */
		FUZZ_ASSERT(!p.next_page_token || p.next_page_token[0]);
		/* The quick look finds the very same token. */
		char *tok = NULL;
		FUZZ_ASSERT(gcs_list_token((const char *)data, size, &tok) == 0);
		FUZZ_ASSERT((tok == NULL) == (p.next_page_token == NULL));
		FUZZ_ASSERT(!tok || strcmp(tok, p.next_page_token) == 0);
		free(tok);
	} else {
		FUZZ_ASSERT(rc < 0);
		FUZZ_ASSERT(!p.items && !p.prefixes && !p.nitems && !p.nprefixes &&
			    !p.next_page_token);
	}
	gcs_list_page_free(&p);
	FUZZ_ASSERT(!p.items && !p.prefixes && !p.nitems && !p.nprefixes && !p.next_page_token);
	return 0;
}
