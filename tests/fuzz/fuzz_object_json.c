/*
 * fuzz_object_json: gcs_object_parse on an object resource as the server
 * would send it (objects.get/insert/compose/rewrite/patch answers).
 */
#include "gcs/gcs.h"

#include <time.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gcs_object o;
	int rc = gcs_object_parse((const char *)data, size, &o);
	FUZZ_ASSERT(rc == 0 || rc < 0);
	if (rc == 0) {
		FUZZ_ASSERT(o.name != NULL);
		(void)strlen(o.name);
		FUZZ_ASSERT(o.mtime.tv_nsec >= 0 && o.mtime.tv_nsec < 1000000000L);
		FUZZ_ASSERT(o.has_crc32c == 0 || o.has_crc32c == 1);
		if (o.symlink_target) {
			FUZZ_ASSERT(o.is_symlink);
			(void)strlen(o.symlink_target);
		}
	} else {
		/* A failed parse leaves nothing to free. */
		FUZZ_ASSERT(o.name == NULL && o.symlink_target == NULL);
	}
	gcs_object_clear(&o);
	FUZZ_ASSERT(o.name == NULL && o.symlink_target == NULL);
	return 0;
}
