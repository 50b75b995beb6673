/*
 * mem.h: allocation that never returns NULL, and a growable string buffer.
 *
 * Every allocation in ferry goes through these wrappers: on out-of-memory
 * they print one line and abort, so callers never test for NULL. Ownership
 * convention (see STYLE.md): a `char *` is owned by whoever holds it and
 * must be freed; a `const char *` is borrowed.
 */
#ifndef FERRY_MEM_H
#define FERRY_MEM_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a newly allocated string, owned by the caller */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * StrBuf: a NUL-terminated string that grows. strbuf_init() leaves it empty
 * with data pointing at "" (never NULL); strbuf_release() frees it and
 * re-initializes; strbuf_detach() hands the string to the caller.
 */
typedef struct StrBuf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} StrBuf;

void		strbuf_init(StrBuf *sb);
void		strbuf_release(StrBuf *sb);
void		strbuf_reset(StrBuf *sb);
void		strbuf_add(StrBuf *sb, const char *s, size_t n);
void		strbuf_addstr(StrBuf *sb, const char *s);
void		strbuf_addch(StrBuf *sb, char c);
void		strbuf_addf(StrBuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void		strbuf_vaddf(StrBuf *sb, const char *fmt, va_list ap);
char	   *strbuf_detach(StrBuf *sb);

/* StrList: a growable array of owned strings. */
typedef struct StrList
{
	char	  **items;
	int			n;
	int			cap;
} StrList;

void		strlist_add(StrList *l, const char *s);	/* copies s */
bool		strlist_has(const StrList *l, const char *s);	/* an item equal to s? */
void		strlist_free(StrList *l);

#endif
