/* libarchive, loaded on first use: image load/save/import, layers and build's COPY of archives include this
 * header instead of <archive.h>, and each libarchive call goes through a table filled by dlopen()/dlsym() the
 * first time one is made. Linked, libarchive (with libxml2, ICU and libstdc++ behind it) cost every store
 * command -- `virtus run` included, which never reads an archive -- several milliseconds of start-up. The real
 * headers still declare every function, so a call with the wrong types is a compile error as before, and a
 * function missing from the list below is a link error (nothing links libarchive).
 *
 * A host without libarchive.so.13 ends the command on the first call with a message naming the package (exit
 * 125): Debian's libarchive13, a dependency of the project (scripts/packages.txt). */
#ifndef VIRTUS_IMAGE_ARCHIVE_API_H
#define VIRTUS_IMAGE_ARCHIVE_API_H

#include <archive.h>
#include <archive_entry.h>

#define VT_ARCHIVE_LIBRARY "libarchive.so.13"

#define VT_ARCHIVE_FUNCS(X) \
	X(archive_entry_clear) \
	X(archive_entry_filetype) \
	X(archive_entry_free) \
	X(archive_entry_hardlink) \
	X(archive_entry_new) \
	X(archive_entry_pathname) \
	X(archive_entry_set_filetype) \
	X(archive_entry_set_gid) \
	X(archive_entry_set_hardlink) \
	X(archive_entry_set_mode) \
	X(archive_entry_set_mtime) \
	X(archive_entry_set_pathname) \
	X(archive_entry_set_perm) \
	X(archive_entry_set_rdev) \
	X(archive_entry_set_size) \
	X(archive_entry_set_symlink) \
	X(archive_entry_set_uid) \
	X(archive_entry_size) \
	X(archive_entry_symlink) \
	X(archive_entry_xattr_add_entry) \
	X(archive_entry_xattr_clear) \
	X(archive_entry_xattr_next) \
	X(archive_entry_xattr_reset) \
	X(archive_errno) \
	X(archive_error_string) \
	X(archive_read_data_block) \
	X(archive_read_data_into_fd) \
	X(archive_read_data_skip) \
	X(archive_read_free) \
	X(archive_read_new) \
	X(archive_read_next_header) \
	X(archive_read_open) \
	X(archive_read_open_fd) \
	X(archive_read_open_filename) \
	X(archive_read_support_filter_all) \
	X(archive_read_support_filter_bzip2) \
	X(archive_read_support_filter_gzip) \
	X(archive_read_support_filter_xz) \
	X(archive_read_support_filter_zstd) \
	X(archive_read_support_format_empty) \
	X(archive_read_support_format_raw) \
	X(archive_read_support_format_tar) \
	X(archive_set_error) \
	X(archive_write_add_filter_gzip) \
	X(archive_write_close) \
	X(archive_write_data) \
	X(archive_write_data_block) \
	X(archive_write_disk_new) \
	X(archive_write_disk_set_options) \
	X(archive_write_finish_entry) \
	X(archive_write_free) \
	X(archive_write_header) \
	X(archive_write_new) \
	X(archive_write_open) \
	X(archive_write_open_filename) \
	X(archive_write_set_bytes_in_last_block) \
	X(archive_write_set_filter_option) \
	X(archive_write_set_format_pax_restricted) \
	X(archive_write_set_format_raw)

struct vt_archive_api {
#define VT_ARCHIVE_SLOT(name) __typeof__(name) *name;
	VT_ARCHIVE_FUNCS(VT_ARCHIVE_SLOT)
#undef VT_ARCHIVE_SLOT
};

/* The loaded table (loads it the first time; exits with a message if the library cannot be loaded). */
const struct vt_archive_api *vt_archive(void);

#define archive_entry_clear(...) (vt_archive()->archive_entry_clear(__VA_ARGS__))
#define archive_entry_filetype(...) (vt_archive()->archive_entry_filetype(__VA_ARGS__))
#define archive_entry_free(...) (vt_archive()->archive_entry_free(__VA_ARGS__))
#define archive_entry_hardlink(...) (vt_archive()->archive_entry_hardlink(__VA_ARGS__))
#define archive_entry_new(...) (vt_archive()->archive_entry_new(__VA_ARGS__))
#define archive_entry_pathname(...) (vt_archive()->archive_entry_pathname(__VA_ARGS__))
#define archive_entry_set_filetype(...) (vt_archive()->archive_entry_set_filetype(__VA_ARGS__))
#define archive_entry_set_gid(...) (vt_archive()->archive_entry_set_gid(__VA_ARGS__))
#define archive_entry_set_hardlink(...) (vt_archive()->archive_entry_set_hardlink(__VA_ARGS__))
#define archive_entry_set_mode(...) (vt_archive()->archive_entry_set_mode(__VA_ARGS__))
#define archive_entry_set_mtime(...) (vt_archive()->archive_entry_set_mtime(__VA_ARGS__))
#define archive_entry_set_pathname(...) (vt_archive()->archive_entry_set_pathname(__VA_ARGS__))
#define archive_entry_set_perm(...) (vt_archive()->archive_entry_set_perm(__VA_ARGS__))
#define archive_entry_set_rdev(...) (vt_archive()->archive_entry_set_rdev(__VA_ARGS__))
#define archive_entry_set_size(...) (vt_archive()->archive_entry_set_size(__VA_ARGS__))
#define archive_entry_set_symlink(...) (vt_archive()->archive_entry_set_symlink(__VA_ARGS__))
#define archive_entry_set_uid(...) (vt_archive()->archive_entry_set_uid(__VA_ARGS__))
#define archive_entry_size(...) (vt_archive()->archive_entry_size(__VA_ARGS__))
#define archive_entry_symlink(...) (vt_archive()->archive_entry_symlink(__VA_ARGS__))
#define archive_entry_xattr_add_entry(...) (vt_archive()->archive_entry_xattr_add_entry(__VA_ARGS__))
#define archive_entry_xattr_clear(...) (vt_archive()->archive_entry_xattr_clear(__VA_ARGS__))
#define archive_entry_xattr_next(...) (vt_archive()->archive_entry_xattr_next(__VA_ARGS__))
#define archive_entry_xattr_reset(...) (vt_archive()->archive_entry_xattr_reset(__VA_ARGS__))
#define archive_errno(...) (vt_archive()->archive_errno(__VA_ARGS__))
#define archive_error_string(...) (vt_archive()->archive_error_string(__VA_ARGS__))
#define archive_read_data_block(...) (vt_archive()->archive_read_data_block(__VA_ARGS__))
#define archive_read_data_into_fd(...) (vt_archive()->archive_read_data_into_fd(__VA_ARGS__))
#define archive_read_data_skip(...) (vt_archive()->archive_read_data_skip(__VA_ARGS__))
#define archive_read_free(...) (vt_archive()->archive_read_free(__VA_ARGS__))
#define archive_read_new(...) (vt_archive()->archive_read_new(__VA_ARGS__))
#define archive_read_next_header(...) (vt_archive()->archive_read_next_header(__VA_ARGS__))
#define archive_read_open(...) (vt_archive()->archive_read_open(__VA_ARGS__))
#define archive_read_open_fd(...) (vt_archive()->archive_read_open_fd(__VA_ARGS__))
#define archive_read_open_filename(...) (vt_archive()->archive_read_open_filename(__VA_ARGS__))
#define archive_read_support_filter_all(...) (vt_archive()->archive_read_support_filter_all(__VA_ARGS__))
#define archive_read_support_filter_bzip2(...) (vt_archive()->archive_read_support_filter_bzip2(__VA_ARGS__))
#define archive_read_support_filter_gzip(...) (vt_archive()->archive_read_support_filter_gzip(__VA_ARGS__))
#define archive_read_support_filter_xz(...) (vt_archive()->archive_read_support_filter_xz(__VA_ARGS__))
#define archive_read_support_filter_zstd(...) (vt_archive()->archive_read_support_filter_zstd(__VA_ARGS__))
#define archive_read_support_format_empty(...) (vt_archive()->archive_read_support_format_empty(__VA_ARGS__))
#define archive_read_support_format_raw(...) (vt_archive()->archive_read_support_format_raw(__VA_ARGS__))
#define archive_read_support_format_tar(...) (vt_archive()->archive_read_support_format_tar(__VA_ARGS__))
#define archive_set_error(...) (vt_archive()->archive_set_error(__VA_ARGS__))
#define archive_write_add_filter_gzip(...) (vt_archive()->archive_write_add_filter_gzip(__VA_ARGS__))
#define archive_write_close(...) (vt_archive()->archive_write_close(__VA_ARGS__))
#define archive_write_data(...) (vt_archive()->archive_write_data(__VA_ARGS__))
#define archive_write_data_block(...) (vt_archive()->archive_write_data_block(__VA_ARGS__))
#define archive_write_disk_new(...) (vt_archive()->archive_write_disk_new(__VA_ARGS__))
#define archive_write_disk_set_options(...) (vt_archive()->archive_write_disk_set_options(__VA_ARGS__))
#define archive_write_finish_entry(...) (vt_archive()->archive_write_finish_entry(__VA_ARGS__))
#define archive_write_free(...) (vt_archive()->archive_write_free(__VA_ARGS__))
#define archive_write_header(...) (vt_archive()->archive_write_header(__VA_ARGS__))
#define archive_write_new(...) (vt_archive()->archive_write_new(__VA_ARGS__))
#define archive_write_open(...) (vt_archive()->archive_write_open(__VA_ARGS__))
#define archive_write_open_filename(...) (vt_archive()->archive_write_open_filename(__VA_ARGS__))
#define archive_write_set_bytes_in_last_block(...) (vt_archive()->archive_write_set_bytes_in_last_block(__VA_ARGS__))
#define archive_write_set_filter_option(...) (vt_archive()->archive_write_set_filter_option(__VA_ARGS__))
#define archive_write_set_format_pax_restricted(...) (vt_archive()->archive_write_set_format_pax_restricted(__VA_ARGS__))
#define archive_write_set_format_raw(...) (vt_archive()->archive_write_set_format_raw(__VA_ARGS__))

#endif
