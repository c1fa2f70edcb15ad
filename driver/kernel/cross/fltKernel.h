/*
 * ============================================================================================
 *  CROSS-CHECK ONLY - NOT FOR WDK BUILDS.
 *
 *  A minimal stand-in for the WDK's <fltKernel.h>, used by `make -C driver cross` so that
 *  x86_64-w64-mingw32-gcc can type-check the kernel glue on Linux. mingw-w64 ships ddk/ntifs.h but
 *  no Filter Manager headers; this file declares the subset of the Filter Manager API (and the few
 *  newer ntifs/wdm items mingw lacks) that the kernel glue uses, transcribed from the documented
 *  prototypes. Structure layouts here are NOT authoritative (only member names and types are
 *  checked); the objects produced are never linked. The real build (agentsh.vcxproj,
 *  .github/workflows/driver.yml) uses the WDK's fltKernel.h and never sees this directory.
 * ============================================================================================
 */
#ifndef AGENTSH_CROSS_FLTKERNEL_H
#define AGENTSH_CROSS_FLTKERNEL_H

#if !defined(__MINGW32__)
#error "kernel/cross/fltKernel.h is for the mingw cross check only; use the WDK's fltKernel.h"
#endif

#include <ntifs.h>
#include <basetsd.h>             /* UINT16/UINT32/UINT64/INT32, as the WDK's fltKernel.h brings them */

/* fltUserStructures.h (the WDK's fltKernel.h includes it): the port headers */
typedef struct _FILTER_MESSAGE_HEADER {
    ULONG ReplyLength;
    ULONGLONG MessageId;
} FILTER_MESSAGE_HEADER, *PFILTER_MESSAGE_HEADER;
typedef struct _FILTER_REPLY_HEADER {
    NTSTATUS Status;
    ULONGLONG MessageId;
} FILTER_REPLY_HEADER, *PFILTER_REPLY_HEADER;

/* ---- SAL: mingw defines only some annotations; the rest expand to nothing here ------------ */
#ifndef _In_
#define _In_
#endif
#ifndef _In_opt_
#define _In_opt_
#endif
#ifndef _Out_
#define _Out_
#endif
#ifndef _Out_opt_
#define _Out_opt_
#endif
#ifndef _Inout_
#define _Inout_
#endif
#ifndef _Inout_opt_
#define _Inout_opt_
#endif
#ifndef _Must_inspect_result_
#define _Must_inspect_result_
#endif
#ifndef _Flt_CompletionContext_Outptr_
#define _Flt_CompletionContext_Outptr_
#endif
#ifndef _Use_decl_annotations_
#define _Use_decl_annotations_
#endif
#ifndef _Outptr_
#define _Outptr_
#endif
#ifndef _Outptr_result_maybenull_
#define _Outptr_result_maybenull_
#endif
#ifndef _In_reads_
#define _In_reads_(x)
#endif
#ifndef _In_reads_bytes_
#define _In_reads_bytes_(x)
#endif
#ifndef _In_reads_bytes_opt_
#define _In_reads_bytes_opt_(x)
#endif
#ifndef _Out_writes_
#define _Out_writes_(x)
#endif
#ifndef _Out_writes_bytes_
#define _Out_writes_bytes_(x)
#endif
#ifndef _Out_writes_bytes_opt_
#define _Out_writes_bytes_opt_(x)
#endif
#ifndef _Success_
#define _Success_(x)
#endif
#ifndef _IRQL_requires_max_
#define _IRQL_requires_max_(x)
#endif
#ifndef _IRQL_requires_
#define _IRQL_requires_(x)
#endif
#ifndef _Acquires_shared_lock_
#define _Acquires_shared_lock_(x)
#endif
#ifndef _Acquires_exclusive_lock_
#define _Acquires_exclusive_lock_(x)
#endif
#ifndef _Releases_shared_lock_
#define _Releases_shared_lock_(x)
#endif
#ifndef _Releases_exclusive_lock_
#define _Releases_exclusive_lock_(x)
#endif
#ifndef _Requires_lock_held_
#define _Requires_lock_held_(x)
#endif
#ifndef _Guarded_by_
#define _Guarded_by_(x)
#endif
#ifndef _Function_class_
#define _Function_class_(x)
#endif
#ifndef _Out_writes_bytes_to_
#define _Out_writes_bytes_to_(x, y)
#endif
#ifndef _Out_writes_bytes_to_opt_
#define _Out_writes_bytes_to_opt_(x, y)
#endif

/* ---- SEH: gcc has no __try/__except; the cross check only needs the code to parse --------- */
#ifndef __try
#define __try if (1)
#define __except(filter) else if (0)
#endif
#ifndef EXCEPTION_EXECUTE_HANDLER
#define EXCEPTION_EXECUTE_HANDLER 1
#endif
#ifndef GetExceptionCode
#define GetExceptionCode() STATUS_INVALID_USER_BUFFER
#endif


/* ---- newer ntifs/wdm items missing from mingw -------------------------------------------- */
typedef ULONG64 POOL_FLAGS;
#define POOL_FLAG_NON_PAGED 0x0000000000000040ULL
#define POOL_FLAG_PAGED     0x0000000000000100ULL
NTKERNELAPI PVOID NTAPI ExAllocatePool2(POOL_FLAGS Flags, SIZE_T NumberOfBytes, ULONG Tag);

NTKERNELAPI VOID FASTCALL ExfAcquirePushLockExclusive(PEX_PUSH_LOCK PushLock);
NTKERNELAPI VOID FASTCALL ExfAcquirePushLockShared(PEX_PUSH_LOCK PushLock);
NTKERNELAPI VOID FASTCALL ExfReleasePushLockExclusive(PEX_PUSH_LOCK PushLock);
NTKERNELAPI VOID FASTCALL ExfReleasePushLockShared(PEX_PUSH_LOCK PushLock);
#define ExAcquirePushLockExclusive(l) ExfAcquirePushLockExclusive(l)
#define ExAcquirePushLockShared(l)    ExfAcquirePushLockShared(l)
#define ExReleasePushLockExclusive(l) ExfReleasePushLockExclusive(l)
#define ExReleasePushLockShared(l)    ExfReleasePushLockShared(l)

typedef struct _FILE_DISPOSITION_INFORMATION_EX {
    ULONG Flags;
} FILE_DISPOSITION_INFORMATION_EX, *PFILE_DISPOSITION_INFORMATION_EX;
#define FILE_DISPOSITION_DELETE 0x00000001
#define FILE_RENAME_REPLACE_IF_EXISTS 0x00000001
#define FILE_LINK_REPLACE_IF_EXISTS 0x00000001
#ifndef FileRenameInformationEx
#define FileRenameInformationEx ((FILE_INFORMATION_CLASS)65)
#endif

NTKERNELAPI NTSTATUS NTAPI CmCallbackGetKeyObjectIDEx(PLARGE_INTEGER Cookie, PVOID Object, PULONG_PTR ObjectID,
                                                       PCUNICODE_STRING *ObjectName, ULONG Flags);
NTKERNELAPI VOID NTAPI CmCallbackReleaseKeyObjectIDEx(PCUNICODE_STRING ObjectName);
NTKERNELAPI NTSTATUS NTAPI PsGetProcessExitStatus(PEPROCESS Process);

/* ---- Filter Manager (subset) --------------------------------------------------------------- */
#ifndef FLTAPI
#define FLTAPI NTAPI
#endif
typedef struct _FLT_FILTER *PFLT_FILTER;
typedef struct _FLT_VOLUME *PFLT_VOLUME;
typedef struct _FLT_INSTANCE *PFLT_INSTANCE;
typedef struct _FLT_PORT *PFLT_PORT;
typedef PVOID PFLT_CONTEXT;
typedef USHORT FLT_CONTEXT_TYPE;
typedef ULONG FLT_FILE_NAME_OPTIONS;
typedef ULONG FLT_INSTANCE_SETUP_FLAGS;
typedef ULONG FLT_INSTANCE_QUERY_TEARDOWN_FLAGS;
typedef ULONG FLT_FILTER_UNLOAD_FLAGS;
typedef ULONG FLT_OPERATION_REGISTRATION_FLAGS;
typedef ULONG FLT_REGISTRATION_FLAGS;
typedef enum _FLT_FILESYSTEM_TYPE { FLT_FSTYPE_UNKNOWN, FLT_FSTYPE_RAW, FLT_FSTYPE_NTFS, FLT_FSTYPE_FAT } FLT_FILESYSTEM_TYPE;

typedef enum _FLT_PREOP_CALLBACK_STATUS {
    FLT_PREOP_SUCCESS_WITH_CALLBACK,
    FLT_PREOP_SUCCESS_NO_CALLBACK,
    FLT_PREOP_PENDING,
    FLT_PREOP_DISALLOW_FASTIO,
    FLT_PREOP_COMPLETE,
    FLT_PREOP_SYNCHRONIZE
} FLT_PREOP_CALLBACK_STATUS;
typedef enum _FLT_POSTOP_CALLBACK_STATUS { FLT_POSTOP_FINISHED_PROCESSING, FLT_POSTOP_MORE_PROCESSING_REQUIRED } FLT_POSTOP_CALLBACK_STATUS;
typedef ULONG FLT_POST_OPERATION_FLAGS;

typedef union _FLT_PARAMETERS {
    struct {
        PIO_SECURITY_CONTEXT SecurityContext;
        ULONG Options;
        USHORT FileAttributes;
        USHORT ShareAccess;
        ULONG EaLength;
        PVOID EaBuffer;
        LARGE_INTEGER AllocationSize;
    } Create;
    struct {
        ULONG Length;
        ULONG Key;
        LARGE_INTEGER ByteOffset;
        PVOID WriteBuffer;
        PMDL MdlAddress;
    } Write;
    struct {
        ULONG Length;
        FILE_INFORMATION_CLASS FileInformationClass;
        PFILE_OBJECT ParentOfTarget;
        union {
            struct { BOOLEAN ReplaceIfExists; BOOLEAN AdvanceOnly; };
            ULONG ClusterCount;
            HANDLE DeleteHandle;
        };
        PVOID InfoBuffer;
    } SetFileInformation;
} FLT_PARAMETERS, *PFLT_PARAMETERS;

typedef struct _FLT_IO_PARAMETER_BLOCK {
    ULONG IrpFlags;
    UCHAR MajorFunction;
    UCHAR MinorFunction;
    UCHAR OperationFlags;
    UCHAR Reserved;
    PFILE_OBJECT TargetFileObject;
    PFLT_INSTANCE TargetInstance;
    FLT_PARAMETERS Parameters;
} FLT_IO_PARAMETER_BLOCK, *PFLT_IO_PARAMETER_BLOCK;

typedef struct _FLT_CALLBACK_DATA {
    ULONG Flags;
    PETHREAD Thread;
    PFLT_IO_PARAMETER_BLOCK Iopb;
    IO_STATUS_BLOCK IoStatus;
    struct _FLT_TAG_DATA_BUFFER *TagData;
    union { struct { LIST_ENTRY QueueLinks; PVOID QueueContext[2]; }; PVOID FilterContext[4]; };
    KPROCESSOR_MODE RequestorMode;
} FLT_CALLBACK_DATA, *PFLT_CALLBACK_DATA;

typedef struct _FLT_RELATED_OBJECTS {
    USHORT Size;
    USHORT TransactionContext;
    PFLT_FILTER Filter;
    PFLT_VOLUME Volume;
    PFLT_INSTANCE Instance;
    PFILE_OBJECT FileObject;
    PVOID Transaction; /* PKTRANSACTION */
} FLT_RELATED_OBJECTS, *PFLT_RELATED_OBJECTS;
typedef const FLT_RELATED_OBJECTS *PCFLT_RELATED_OBJECTS;

typedef struct _FLT_FILE_NAME_INFORMATION {
    USHORT Size;
    USHORT NamesParsed;
    FLT_FILE_NAME_OPTIONS Format;
    UNICODE_STRING Name;
    UNICODE_STRING Volume;
    UNICODE_STRING Share;
    UNICODE_STRING Extension;
    UNICODE_STRING Stream;
    UNICODE_STRING FinalComponent;
    UNICODE_STRING ParentDir;
} FLT_FILE_NAME_INFORMATION, *PFLT_FILE_NAME_INFORMATION;

typedef FLT_PREOP_CALLBACK_STATUS (*PFLT_PRE_OPERATION_CALLBACK)(PFLT_CALLBACK_DATA, PCFLT_RELATED_OBJECTS, PVOID *);
typedef FLT_POSTOP_CALLBACK_STATUS (*PFLT_POST_OPERATION_CALLBACK)(PFLT_CALLBACK_DATA, PCFLT_RELATED_OBJECTS, PVOID,
                                                                   FLT_POST_OPERATION_FLAGS);
typedef NTSTATUS (*PFLT_FILTER_UNLOAD_CALLBACK)(FLT_FILTER_UNLOAD_FLAGS);
typedef NTSTATUS (*PFLT_INSTANCE_SETUP_CALLBACK)(PCFLT_RELATED_OBJECTS, FLT_INSTANCE_SETUP_FLAGS, DEVICE_TYPE,
                                                 FLT_FILESYSTEM_TYPE);
typedef NTSTATUS (*PFLT_INSTANCE_QUERY_TEARDOWN_CALLBACK)(PCFLT_RELATED_OBJECTS, FLT_INSTANCE_QUERY_TEARDOWN_FLAGS);

typedef struct _FLT_OPERATION_REGISTRATION {
    UCHAR MajorFunction;
    FLT_OPERATION_REGISTRATION_FLAGS Flags;
    PFLT_PRE_OPERATION_CALLBACK PreOperation;
    PFLT_POST_OPERATION_CALLBACK PostOperation;
    PVOID Reserved1;
} FLT_OPERATION_REGISTRATION, *PFLT_OPERATION_REGISTRATION;

typedef struct _FLT_REGISTRATION {
    USHORT Size;
    USHORT Version;
    FLT_REGISTRATION_FLAGS Flags;
    const void *ContextRegistration;
    const FLT_OPERATION_REGISTRATION *OperationRegistration;
    PFLT_FILTER_UNLOAD_CALLBACK FilterUnloadCallback;
    PFLT_INSTANCE_SETUP_CALLBACK InstanceSetupCallback;
    PFLT_INSTANCE_QUERY_TEARDOWN_CALLBACK InstanceQueryTeardownCallback;
    PVOID InstanceTeardownStartCallback;
    PVOID InstanceTeardownCompleteCallback;
    PVOID GenerateFileNameCallback;
    PVOID NormalizeNameComponentCallback;
    PVOID NormalizeContextCleanupCallback;
    PVOID TransactionNotificationCallback;
    PVOID NormalizeNameComponentExCallback;
    PVOID SectionNotificationCallback;
} FLT_REGISTRATION, *PFLT_REGISTRATION;

typedef NTSTATUS (*PFLT_CONNECT_NOTIFY)(PFLT_PORT, PVOID, PVOID, ULONG, PVOID *);
typedef VOID (*PFLT_DISCONNECT_NOTIFY)(PVOID);
typedef NTSTATUS (*PFLT_MESSAGE_NOTIFY)(PVOID, PVOID, ULONG, PVOID, ULONG, PULONG);

#define FLT_REGISTRATION_VERSION 0x0203
#define IRP_MJ_OPERATION_END ((UCHAR)0x80)
#define FLTFL_OPERATION_REGISTRATION_SKIP_PAGING_IO 0x00000001
#define FLTFL_CALLBACK_DATA_FAST_IO_OPERATION 0x00000002
#define FLT_IS_FASTIO_OPERATION(d) (((d)->Flags & FLTFL_CALLBACK_DATA_FAST_IO_OPERATION) != 0)
#define FLT_FILE_NAME_NORMALIZED 0x01
#define FLT_FILE_NAME_OPENED 0x02
#define FLT_FILE_NAME_QUERY_DEFAULT 0x0100
#define FLT_PORT_ALL_ACCESS 0x001F0001
#define FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT 0x00000001

NTSTATUS FLTAPI FltRegisterFilter(PDRIVER_OBJECT, const FLT_REGISTRATION *, PFLT_FILTER *);
VOID FLTAPI FltUnregisterFilter(PFLT_FILTER);
NTSTATUS FLTAPI FltStartFiltering(PFLT_FILTER);
NTSTATUS FLTAPI FltBuildDefaultSecurityDescriptor(PSECURITY_DESCRIPTOR *, ACCESS_MASK);
VOID FLTAPI FltFreeSecurityDescriptor(PSECURITY_DESCRIPTOR);
NTSTATUS FLTAPI FltCreateCommunicationPort(PFLT_FILTER, PFLT_PORT *, POBJECT_ATTRIBUTES, PVOID, PFLT_CONNECT_NOTIFY,
                                           PFLT_DISCONNECT_NOTIFY, PFLT_MESSAGE_NOTIFY, LONG);
VOID FLTAPI FltCloseCommunicationPort(PFLT_PORT);
VOID FLTAPI FltCloseClientPort(PFLT_FILTER, PFLT_PORT *);
NTSTATUS FLTAPI FltSendMessage(PFLT_FILTER, PFLT_PORT *, PVOID, ULONG, PVOID, PULONG, PLARGE_INTEGER);
NTSTATUS FLTAPI FltGetFileNameInformation(PFLT_CALLBACK_DATA, FLT_FILE_NAME_OPTIONS, PFLT_FILE_NAME_INFORMATION *);
NTSTATUS FLTAPI FltParseFileNameInformation(PFLT_FILE_NAME_INFORMATION);
VOID FLTAPI FltReleaseFileNameInformation(PFLT_FILE_NAME_INFORMATION);
NTSTATUS FLTAPI FltGetDestinationFileNameInformation(PFLT_INSTANCE, PFILE_OBJECT, HANDLE, PWSTR, ULONG,
                                                     FLT_FILE_NAME_OPTIONS, PFLT_FILE_NAME_INFORMATION *);
ULONG FLTAPI FltGetRequestorProcessId(PFLT_CALLBACK_DATA);
#endif /* AGENTSH_CROSS_FLTKERNEL_H */
