/*
 * ash_file.c - file system callbacks.
 *
 * Pre-create classification (first match):
 *   DELETE  DesiredAccess has DELETE, or CreateOptions has FILE_DELETE_ON_CLOSE (flag DELETE_ON_CLOSE)
 *   CREATE  disposition FILE_SUPERSEDE / FILE_CREATE / FILE_OPEN_IF / FILE_OVERWRITE / FILE_OVERWRITE_IF
 *   WRITE   FILE_WRITE_DATA or FILE_APPEND_DATA
 *   READ    FILE_READ_DATA or FILE_EXECUTE
 *   (none)  attribute / synchronize-only opens: not decided
 * Skipped: kernel-mode requestors, paging files (SL_OPEN_PAGING_FILE), volume opens (FO_VOLUME_OPEN),
 * directory READ opens (listing; the seeds did not check directories; creating or deleting one is
 * decided with FILE_REQ_FLAG_DIRECTORY), excluded and untracked processes (before any name query).
 * Pre-write: not paging I/O (skipped by registration), PASSIVE_LEVEL only.
 * Pre-set-information: FileDispositionInformation(Ex) with delete set -> DELETE;
 * FileRenameInformation(Ex) -> RENAME, FileLinkInformation(Ex) -> LINK, with the destination from
 * FltGetDestinationFileNameInformation.
 * A DENY completes the operation with STATUS_ACCESS_DENIED.
 */
#include "ash_kernel.h"

#ifndef FileLinkInformationEx
#define FileLinkInformationEx ((FILE_INFORMATION_CLASS)72)
#endif
#ifndef FileDispositionInformationEx
#define FileDispositionInformationEx ((FILE_INFORMATION_CLASS)64)
#endif
#ifndef FILE_DISPOSITION_DELETE
#define FILE_DISPOSITION_DELETE 0x00000001
#endif

static NTSTATUS AgentshGetName(_In_ PFLT_CALLBACK_DATA Data, _Outptr_ PFLT_FILE_NAME_INFORMATION *Name)
{
    NTSTATUS status = FltGetFileNameInformation(Data, FLT_FILE_NAME_NORMALIZED | FLT_FILE_NAME_QUERY_DEFAULT, Name);
    if (!NT_SUCCESS(status)) {
        /* e.g. a create of a file that does not exist yet on some file systems */
        status = FltGetFileNameInformation(Data, FLT_FILE_NAME_OPENED | FLT_FILE_NAME_QUERY_DEFAULT, Name);
    }
    if (NT_SUCCESS(status)) {
        status = FltParseFileNameInformation(*Name);
        if (!NT_SUCCESS(status)) {
            FltReleaseFileNameInformation(*Name);
            *Name = NULL;
        }
    }
    return status;
}

static FLT_PREOP_CALLBACK_STATUS AgentshEnforce(_Inout_ PFLT_CALLBACK_DATA Data, _In_ const AGENTSH_VERDICT *Verdict)
{
    if (Verdict->Decision == DECISION_DENY) {
        Data->IoStatus.Status = STATUS_ACCESS_DENIED;
        Data->IoStatus.Information = 0;
        return FLT_PREOP_COMPLETE;
    }
    return FLT_PREOP_SUCCESS_NO_CALLBACK;
}

/* Decides Operation on the target of Data (and Dest for rename/link). */
static FLT_PREOP_CALLBACK_STATUS AgentshDecideFile(_Inout_ PFLT_CALLBACK_DATA Data, _In_ UINT32 Pid, _In_ UINT32 Operation,
    _In_ UINT32 Disposition, _In_ UINT32 Access, _In_ UINT32 Flags, _In_opt_ PFLT_FILE_NAME_INFORMATION Dest)
{
    PFLT_FILE_NAME_INFORMATION name = NULL;
    AGENTSH_DECIDE_REQUEST request;
    AGENTSH_VERDICT verdict;

    if (!NT_SUCCESS(AgentshGetName(Data, &name))) {
        /* no name, no decision: the fail mode decides (counted as a fail-mode decision) */
        RtlZeroMemory(&request, sizeof(request));
        request.Kind = AGENTSH_KIND_FILE;
        request.ProcessId = Pid;
        request.Operation = Operation;
        AgentshCoreDecide(&AgentshGlobals.Core, &request, &verdict);
        return AgentshEnforce(Data, &verdict);
    }
    RtlZeroMemory(&request, sizeof(request));
    request.Kind = AGENTSH_KIND_FILE;
    request.ProcessId = Pid;
    request.ThreadId = HandleToULong(PsGetCurrentThreadId());
    request.Operation = Operation;
    request.CreateDisposition = Disposition;
    request.DesiredAccess = Access;
    request.Flags = Flags;
    request.Strings[0] = AgentshUstrFromUnicode(&name->Name);
    request.Strings[1] = AgentshUstrFromUnicode(Dest != NULL ? &Dest->Name : NULL);
    request.Strings[2] = AgentshUstrFromUnicode(&name->Volume);
    AgentshCoreDecide(&AgentshGlobals.Core, &request, &verdict);
    FltReleaseFileNameInformation(name);
    return AgentshEnforce(Data, &verdict);
}

FLT_PREOP_CALLBACK_STATUS AgentshPreCreate(_Inout_ PFLT_CALLBACK_DATA Data, _In_ PCFLT_RELATED_OBJECTS FltObjects,
    _Flt_CompletionContext_Outptr_ PVOID *CompletionContext)
{
    PFLT_IO_PARAMETER_BLOCK iopb = Data->Iopb;
    UINT32 pid, disposition, options, access, operation, flags = 0;

    UNREFERENCED_PARAMETER(FltObjects);
    *CompletionContext = NULL;
    if (Data->RequestorMode == KernelMode || FlagOn(iopb->OperationFlags, SL_OPEN_PAGING_FILE) ||
        (iopb->TargetFileObject != NULL && FlagOn(iopb->TargetFileObject->Flags, FO_VOLUME_OPEN))) {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }
    pid = (UINT32)FltGetRequestorProcessId(Data);
    if (!AgentshCoreShouldCheck(&AgentshGlobals.Core, pid, NULL)) {
        return FLT_PREOP_SUCCESS_NO_CALLBACK; /* untracked or excluded: no name query */
    }
    options = iopb->Parameters.Create.Options & 0x00FFFFFF;
    disposition = (iopb->Parameters.Create.Options >> 24) & 0xFF;
    access = iopb->Parameters.Create.SecurityContext != NULL ? iopb->Parameters.Create.SecurityContext->DesiredAccess : 0;
    if (FlagOn(options, FILE_DIRECTORY_FILE)) {
        flags |= FILE_REQ_FLAG_DIRECTORY;
    }
    if (FlagOn(options, FILE_DELETE_ON_CLOSE)) {
        flags |= FILE_REQ_FLAG_DELETE_ON_CLOSE;
    }
    if (FlagOn(access, DELETE) || FlagOn(options, FILE_DELETE_ON_CLOSE)) {
        operation = FILE_OP_DELETE;
    } else if (disposition == FILE_SUPERSEDE || disposition == FILE_CREATE || disposition == FILE_OPEN_IF ||
               disposition == FILE_OVERWRITE || disposition == FILE_OVERWRITE_IF) {
        operation = FILE_OP_CREATE;
    } else if (FlagOn(access, FILE_WRITE_DATA | FILE_APPEND_DATA)) {
        operation = FILE_OP_WRITE;
    } else if (FlagOn(access, FILE_READ_DATA | FILE_EXECUTE)) {
        if (FlagOn(options, FILE_DIRECTORY_FILE)) {
            return FLT_PREOP_SUCCESS_NO_CALLBACK; /* directory listing */
        }
        operation = FILE_OP_READ;
    } else {
        return FLT_PREOP_SUCCESS_NO_CALLBACK; /* attributes / synchronize only */
    }
    return AgentshDecideFile(Data, pid, operation, disposition, access, flags, NULL);
}

FLT_PREOP_CALLBACK_STATUS AgentshPreWrite(_Inout_ PFLT_CALLBACK_DATA Data, _In_ PCFLT_RELATED_OBJECTS FltObjects,
    _Flt_CompletionContext_Outptr_ PVOID *CompletionContext)
{
    UINT32 pid;
    UNREFERENCED_PARAMETER(FltObjects);
    *CompletionContext = NULL;
    if (Data->RequestorMode == KernelMode || KeGetCurrentIrql() != PASSIVE_LEVEL ||
        FlagOn(Data->Iopb->IrpFlags, IRP_PAGING_IO | IRP_SYNCHRONOUS_PAGING_IO)) {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }
    pid = (UINT32)FltGetRequestorProcessId(Data);
    if (!AgentshCoreShouldCheck(&AgentshGlobals.Core, pid, NULL)) {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }
    return AgentshDecideFile(Data, pid, FILE_OP_WRITE, 0, FILE_WRITE_DATA, 0, NULL);
}

FLT_PREOP_CALLBACK_STATUS AgentshPreSetInformation(_Inout_ PFLT_CALLBACK_DATA Data,
    _In_ PCFLT_RELATED_OBJECTS FltObjects, _Flt_CompletionContext_Outptr_ PVOID *CompletionContext)
{
    PFLT_IO_PARAMETER_BLOCK iopb = Data->Iopb;
    FILE_INFORMATION_CLASS cls = iopb->Parameters.SetFileInformation.FileInformationClass;
    PVOID info = iopb->Parameters.SetFileInformation.InfoBuffer;
    ULONG length = iopb->Parameters.SetFileInformation.Length;
    PFLT_FILE_NAME_INFORMATION dest = NULL;
    FLT_PREOP_CALLBACK_STATUS result;
    UINT32 pid, operation, flags = 0;

    *CompletionContext = NULL;
    if (Data->RequestorMode == KernelMode || info == NULL || KeGetCurrentIrql() != PASSIVE_LEVEL) {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }
    if (cls == FileDispositionInformation) {
        if (length < sizeof(FILE_DISPOSITION_INFORMATION) || !((PFILE_DISPOSITION_INFORMATION)info)->DeleteFile) {
            return FLT_PREOP_SUCCESS_NO_CALLBACK; /* clearing the delete disposition */
        }
        operation = FILE_OP_DELETE;
    } else if (cls == FileDispositionInformationEx) {
        ULONG dflags;
        if (length < sizeof(ULONG)) {
            return FLT_PREOP_SUCCESS_NO_CALLBACK;
        }
        RtlCopyMemory(&dflags, info, sizeof(dflags));
        if (!FlagOn(dflags, FILE_DISPOSITION_DELETE)) {
            return FLT_PREOP_SUCCESS_NO_CALLBACK;
        }
        operation = FILE_OP_DELETE;
    } else if (cls == FileRenameInformation || cls == FileRenameInformationEx || cls == FileLinkInformation ||
               cls == FileLinkInformationEx) {
        /* FILE_RENAME_INFORMATION and FILE_LINK_INFORMATION share the layout: {BOOLEAN ReplaceIfExists
         * | ULONG Flags (Ex)}, RootDirectory, FileNameLength, FileName */
        PFILE_RENAME_INFORMATION r = (PFILE_RENAME_INFORMATION)info;
        BOOLEAN ex = (cls == FileRenameInformationEx || cls == FileLinkInformationEx);
        ULONG rflags = 0;
        if (length < FIELD_OFFSET(FILE_RENAME_INFORMATION, FileName) ||
            r->FileNameLength > length - FIELD_OFFSET(FILE_RENAME_INFORMATION, FileName)) {
            return FLT_PREOP_SUCCESS_NO_CALLBACK; /* the file system rejects it */
        }
        if (ex) {
            RtlCopyMemory(&rflags, info, sizeof(rflags));
        }
        if (ex ? FlagOn(rflags, 0x1 /* FILE_RENAME_REPLACE_IF_EXISTS / FILE_LINK_REPLACE_IF_EXISTS */)
               : r->ReplaceIfExists) {
            flags |= FILE_REQ_FLAG_REPLACE_IF_EXISTS;
        }
        operation = (cls == FileRenameInformation || cls == FileRenameInformationEx) ? FILE_OP_RENAME : FILE_OP_LINK;
        pid = (UINT32)FltGetRequestorProcessId(Data);
        if (!AgentshCoreShouldCheck(&AgentshGlobals.Core, pid, NULL)) {
            return FLT_PREOP_SUCCESS_NO_CALLBACK;
        }
        if (!NT_SUCCESS(FltGetDestinationFileNameInformation(FltObjects->Instance, FltObjects->FileObject,
                                                             r->RootDirectory, r->FileName, r->FileNameLength,
                                                             FLT_FILE_NAME_NORMALIZED | FLT_FILE_NAME_QUERY_DEFAULT,
                                                             &dest))) {
            dest = NULL; /* decided without a destination: the key differs from any real one */
        }
        result = AgentshDecideFile(Data, pid, operation, 0, DELETE, flags, dest);
        if (dest != NULL) {
            FltReleaseFileNameInformation(dest);
        }
        return result;
    } else {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }
    pid = (UINT32)FltGetRequestorProcessId(Data);
    if (!AgentshCoreShouldCheck(&AgentshGlobals.Core, pid, NULL)) {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }
    return AgentshDecideFile(Data, pid, operation, 0, DELETE, 0, NULL);
}
