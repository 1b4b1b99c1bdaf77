/* Unit tests of the inode table's directory knowledge: children a complete
 * directory keeps, what frees them, expiry and the cap. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "fs/inode.h"

static struct inode_table t;

static int setup(void **state)
{
	(void)state;
	inode_table_init(&t);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	inode_table_free(&t);
	return 0;
}

/* A child the kernel looked up once. */
static struct inode *looked_up(struct inode *parent, const char *name, enum inode_kind kind)
{
	struct inode *i = inode_child_get(&t, parent, name, kind);
	i->nlookup++;
	return i;
}

static void test_kept_while_complete(void **state)
{
	(void)state;
	struct inode *d = looked_up(t.root, "d", INODE_DIR);
	struct inode *a = inode_child_get(&t, d, "a", INODE_FILE); /* from a listing */
	looked_up(d, "b", INODE_FILE);
	inode_dir_set_complete(&t, d, inode_now() + 60);
	assert_true(inode_dir_complete(d, inode_now()));
	assert_int_equal(t.count, 4);
	assert_int_equal(t.known, 2);
	/* The kernel forgets b: the complete directory keeps it as a name. */
	inode_forget(&t, inode_child(&t, d, "b"), 1);
	assert_non_null(inode_child(&t, d, "b"));
	assert_ptr_equal(inode_child(&t, d, "a"), a);
	/* Dropping the knowledge frees the children nobody holds. */
	inode_dir_forget(&t, d);
	assert_false(inode_dir_complete(d, inode_now()));
	assert_null(inode_child(&t, d, "a"));
	assert_null(inode_child(&t, d, "b"));
	assert_int_equal(t.count, 2);
	assert_int_equal(t.known, 0);
	/* And the directory itself goes with its last lookup. */
	inode_forget(&t, d, 1);
	assert_int_equal(t.count, 1);
}

static void test_unhash_frees_a_kept_child(void **state)
{
	(void)state;
	struct inode *d = looked_up(t.root, "d", INODE_DIR);
	inode_child_get(&t, d, "a", INODE_FILE);
	inode_dir_set_complete(&t, d, inode_now() + 60);
	assert_int_equal(d->dir->nchildren, 1);
	inode_unhash(&t, inode_child(&t, d, "a"));
	assert_int_equal(t.count, 2);
	assert_int_equal(d->dir->nchildren, 0);
	assert_int_equal(t.known, 0);
	assert_true(inode_dir_complete(d, inode_now())); /* still exact: a is gone */
}

static void test_move_between_complete_dirs(void **state)
{
	(void)state;
	struct inode *d = looked_up(t.root, "d", INODE_DIR);
	struct inode *e = looked_up(t.root, "e", INODE_DIR);
	struct inode *a = looked_up(d, "a", INODE_FILE);
	inode_child_get(&t, e, "b", INODE_FILE); /* kept by e only */
	inode_dir_set_complete(&t, d, inode_now() + 60);
	inode_dir_set_complete(&t, e, inode_now() + 60);
	assert_int_equal(t.known, 2);
	inode_ref(a);
	inode_move(&t, a, e, "b"); /* over b, which nobody holds: freed */
	inode_unref(&t, a);
	assert_ptr_equal(inode_child(&t, e, "b"), a);
	assert_null(inode_child(&t, d, "a"));
	assert_int_equal(d->dir->nchildren, 0);
	assert_int_equal(e->dir->nchildren, 1);
	assert_int_equal(t.known, 1);
	assert_int_equal(t.count, 4);
}

static void test_expiry_oldest_first(void **state)
{
	(void)state;
	struct inode *d = looked_up(t.root, "d", INODE_DIR);
	struct inode *e = looked_up(t.root, "e", INODE_DIR);
	inode_child_get(&t, d, "x", INODE_FILE);
	inode_child_get(&t, e, "y", INODE_FILE);
	double now = inode_now();
	inode_dir_set_complete(&t, e, now + 100);
	inode_dir_set_complete(&t, d, now + 10);  /* expires first: sorted before e */
	assert_ptr_equal(t.oldest_complete, d);
	assert_ptr_equal(t.newest_complete, e);
	/* A later expiry given again is kept. */
	inode_dir_set_complete(&t, e, now + 50);
	assert_true(e->dir->complete_until == now + 100);
	inode_dir_expire(&t, now + 20);
	assert_false(inode_dir_complete(d, now));
	assert_null(inode_child(&t, d, "x"));
	assert_true(inode_dir_complete(e, now + 20));
	assert_non_null(inode_child(&t, e, "y"));
	inode_dir_expire(&t, now + 200);
	assert_null(inode_child(&t, e, "y"));
	assert_null(t.oldest_complete);
	assert_int_equal(t.known, 0);
}

static void test_complete_empty_dir_freed_cleanly(void **state)
{
	(void)state;
	struct inode *p = looked_up(t.root, "p", INODE_DIR);
	struct inode *d = inode_child_get(&t, p, "d", INODE_DIR); /* held by nobody */
	inode_dir_set_complete(&t, d, inode_now() + 60);
	inode_dir_set_complete(&t, p, inode_now() + 60);
	assert_int_equal(t.count, 3);
	/* p forgets: d, complete and empty, is freed and leaves the list. */
	inode_dir_forget(&t, p);
	assert_int_equal(t.count, 2);
	assert_null(t.oldest_complete);
	assert_null(t.newest_complete);
}

static void test_cap_drops_oldest(void **state)
{
	(void)state;
	struct inode *d = looked_up(t.root, "d", INODE_DIR);
	struct inode *e = looked_up(t.root, "e", INODE_DIR);
	char name[32];
	for (int k = 0; k < INODE_DIR_KNOWN_MAX / 2 + 10; k++) {
		snprintf(name, sizeof(name), "f%d", k);
		inode_child_get(&t, d, name, INODE_FILE);
		inode_child_get(&t, e, name, INODE_FILE);
	}
	double now = inode_now();
	inode_dir_set_complete(&t, d, now + 10);
	assert_true(inode_dir_complete(d, now));
	inode_dir_set_complete(&t, e, now + 20);
	/* Both together pass the cap: the one that expires first went. */
	assert_false(inode_dir_complete(d, now));
	assert_true(inode_dir_complete(e, now));
	assert_true(t.known <= INODE_DIR_KNOWN_MAX);
	assert_null(inode_child(&t, d, "f0"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kept_while_complete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unhash_frees_a_kept_child, setup, teardown),
		cmocka_unit_test_setup_teardown(test_move_between_complete_dirs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_oldest_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_complete_empty_dir_freed_cleanly, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cap_drops_oldest, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
