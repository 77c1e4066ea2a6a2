/* Parsing and checking of NBD client messages.  Pure functions: see tapdisk-nbd-parse.h. */
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "tapdisk-nbd-parse.h"

#define NBD_ALIGN 512u

/* Unaligned big-endian loads: the wire structs are packed, so read through memcpy. */
static uint16_t nbd_load_be16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return be16toh(v);
}

static uint32_t nbd_load_be32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return be32toh(v);
}

static uint64_t nbd_load_be64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return be64toh(v);
}

int nbd_parse_request(const void *buf, size_t len, struct nbd_request *req)
{
	const uint8_t *p = buf;

	if (len < NBD_REQUEST_SIZE)
		return -EAGAIN;
	if (nbd_load_be32(p) != NBD_REQUEST_MAGIC)
		return -EBADMSG;

	req->flags = nbd_load_be16(p + 4);
	req->type = nbd_load_be16(p + 6);
	req->cookie = nbd_load_be64(p + 8);
	req->offset = nbd_load_be64(p + 16);
	req->length = nbd_load_be32(p + 24);
	return 0;
}

/* Flags a command may carry.  FUA is valid on every command once SEND_FUA is offered. */
static uint16_t nbd_cmd_allowed_flags(uint16_t type, const struct nbd_export_limits *lim)
{
	switch (type) {
	case NBD_CMD_READ:
		/* DF is offered only with structured replies. */
		return NBD_CMD_FLAG_FUA | (lim->structured ? NBD_CMD_FLAG_DF : 0);
	case NBD_CMD_WRITE_ZEROES:
		/* FAST_ZERO is not offered: we cannot promise zeroing is faster than writing. */
		return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE;
	default:
		return NBD_CMD_FLAG_FUA;
	}
}

uint32_t nbd_check_request(const struct nbd_request *req, const struct nbd_export_limits *lim)
{
	int writes, too_long;

	switch (req->type) {
	case NBD_CMD_READ:
	case NBD_CMD_WRITE:
	case NBD_CMD_DISC:
	case NBD_CMD_FLUSH:
	case NBD_CMD_TRIM:
	case NBD_CMD_CACHE:
	case NBD_CMD_WRITE_ZEROES:
		break;
	default:
		return NBD_EINVAL;
	}

	if (req->flags & ~nbd_cmd_allowed_flags(req->type, lim))
		return NBD_EINVAL;

	if (req->type == NBD_CMD_DISC || req->type == NBD_CMD_FLUSH)
		return req->offset || req->length ? NBD_EINVAL : NBD_SUCCESS;

	writes = req->type == NBD_CMD_WRITE || req->type == NBD_CMD_WRITE_ZEROES ||
		 req->type == NBD_CMD_TRIM;
	if (writes && lim->read_only)
		return NBD_EPERM;

	if (req->offset % NBD_ALIGN || req->length % NBD_ALIGN)
		return NBD_EINVAL;

	/* Only READ and WRITE carry a payload; the others may span up to 4 GiB. */
	too_long = (req->type == NBD_CMD_READ || req->type == NBD_CMD_WRITE) &&
		   req->length > lim->max_payload;
	if (too_long)
		return req->flags & NBD_CMD_FLAG_DF ? NBD_EOVERFLOW : NBD_EINVAL;

	/* Written so that offset + length cannot overflow. */
	if (req->offset > lim->size || req->length > lim->size - req->offset) {
		if (req->type == NBD_CMD_WRITE || req->type == NBD_CMD_WRITE_ZEROES)
			return NBD_ENOSPC;
		return NBD_EINVAL;
	}

	return NBD_SUCCESS;
}

int nbd_parse_option(const void *buf, size_t len, struct nbd_option *opt)
{
	const uint8_t *p = buf;

	if (len < NBD_OPTION_HEADER_SIZE)
		return -EAGAIN;
	if (nbd_load_be64(p) != NBD_IHAVEOPT)
		return -EBADMSG;

	opt->option = nbd_load_be32(p + 8);
	opt->length = nbd_load_be32(p + 12);
	return 0;
}

int nbd_check_client_flags(uint32_t flags)
{
	return flags & ~NBD_FLAG_C_MASK ? -EINVAL : 0;
}

int nbd_parse_info_payload(const void *buf, size_t len, struct nbd_info_payload *info)
{
	const uint8_t *p = buf;
	size_t rest;
	uint16_t i;

	memset(info, 0, sizeof(*info));

	if (len < 4)
		return -EINVAL;
	info->name_len = nbd_load_be32(p);
	rest = len - 4;
	/* The name and the u16 count must fit; compare without adding to name_len. */
	if (rest < 2 || info->name_len > rest - 2)
		return -EINVAL;
	info->name = (const char *)p + 4;
	rest -= info->name_len;
	p += 4 + info->name_len;

	info->n_requests = nbd_load_be16(p);
	rest -= 2;
	p += 2;
	/* Exactly n requests: trailing bytes mean a client bug we should not guess about. */
	if (rest != (size_t)info->n_requests * 2)
		return -EINVAL;

	for (i = 0; i < info->n_requests; i++) {
		/* Unknown information types are ignored, as the spec asks. */
		switch (nbd_load_be16(p + 2 * (size_t)i)) {
		case NBD_INFO_NAME:
			info->want_name = 1;
			break;
		case NBD_INFO_DESCRIPTION:
			info->want_description = 1;
			break;
		case NBD_INFO_BLOCK_SIZE:
			info->want_block_size = 1;
			break;
		}
	}
	return 0;
}

uint32_t nbd_error_from_errno(int err)
{
	/* INT_MIN has no positive counterpart; it is no errno anyway. */
	if (err == INT_MIN)
		return NBD_EIO;
	if (err < 0)
		err = -err;

	switch (err) {
	case 0:
		return NBD_SUCCESS;
	case EPERM:
	case EROFS:
	case EACCES:
		return NBD_EPERM;
	case EIO:
		return NBD_EIO;
	case ENOMEM:
		return NBD_ENOMEM;
	case EINVAL:
		return NBD_EINVAL;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return NBD_ENOSPC;
	case EOVERFLOW:
		return NBD_EOVERFLOW;
	case ENOTSUP:
		return NBD_ENOTSUP;
	case ESHUTDOWN:
		return NBD_ESHUTDOWN;
	default:
		/* A disk error we do not name is still a failed I/O, not a bad request. */
		return NBD_EIO;
	}
}

const char *nbd_opt_name(uint32_t option)
{
	switch (option) {
	case NBD_OPT_EXPORT_NAME:
		return "EXPORT_NAME";
	case NBD_OPT_ABORT:
		return "ABORT";
	case NBD_OPT_LIST:
		return "LIST";
	case NBD_OPT_PEEK_EXPORT:
		return "PEEK_EXPORT";
	case NBD_OPT_STARTTLS:
		return "STARTTLS";
	case NBD_OPT_INFO:
		return "INFO";
	case NBD_OPT_GO:
		return "GO";
	case NBD_OPT_STRUCTURED_REPLY:
		return "STRUCTURED_REPLY";
	case NBD_OPT_LIST_META_CONTEXT:
		return "LIST_META_CONTEXT";
	case NBD_OPT_SET_META_CONTEXT:
		return "SET_META_CONTEXT";
	case NBD_OPT_EXTENDED_HEADERS:
		return "EXTENDED_HEADERS";
	default:
		return "unknown option";
	}
}

const char *nbd_cmd_name(uint16_t type)
{
	switch (type) {
	case NBD_CMD_READ:
		return "READ";
	case NBD_CMD_WRITE:
		return "WRITE";
	case NBD_CMD_DISC:
		return "DISC";
	case NBD_CMD_FLUSH:
		return "FLUSH";
	case NBD_CMD_TRIM:
		return "TRIM";
	case NBD_CMD_CACHE:
		return "CACHE";
	case NBD_CMD_WRITE_ZEROES:
		return "WRITE_ZEROES";
	case NBD_CMD_BLOCK_STATUS:
		return "BLOCK_STATUS";
	case NBD_CMD_RESIZE:
		return "RESIZE";
	default:
		return "unknown command";
	}
}

const char *nbd_error_name(uint32_t error)
{
	switch (error) {
	case NBD_SUCCESS:
		return "success";
	case NBD_EPERM:
		return "EPERM";
	case NBD_EIO:
		return "EIO";
	case NBD_ENOMEM:
		return "ENOMEM";
	case NBD_EINVAL:
		return "EINVAL";
	case NBD_ENOSPC:
		return "ENOSPC";
	case NBD_EOVERFLOW:
		return "EOVERFLOW";
	case NBD_ENOTSUP:
		return "ENOTSUP";
	case NBD_ESHUTDOWN:
		return "ESHUTDOWN";
	default:
		return "unknown error";
	}
}
