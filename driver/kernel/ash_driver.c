/*
 * ash_driver.c - DriverEntry, unload, filter registration and instance setup of agentsh.sys.
 *
 * Start order: core -> filter registration -> communication port -> process notify -> registry
 * callback -> notification thread -> FltStartFiltering. Any failure unwinds what was done, in
 * reverse. Unload runs the same list backwards.
 */
#include "ash_kernel.h"

AGENTSH_GLOBALS AgentshGlobals;

DRIVER_INITIALIZE DriverEntry;
static NTSTATUS AgentshUnload(_In_ FLT_FILTER_UNLOAD_FLAGS Flags);
static NTSTATUS AgentshInstanceSetup(_In_ PCFLT_RELATED_OBJECTS FltObjects, _In_ FLT_INSTANCE_SETUP_FLAGS Flags,
    _In_ DEVICE_TYPE VolumeDeviceType, _In_ FLT_FILESYSTEM_TYPE VolumeFilesystemType);
static NTSTATUS AgentshInstanceQueryTeardown(_In_ PCFLT_RELATED_OBJECTS FltObjects,
    _In_ FLT_INSTANCE_QUERY_TEARDOWN_FLAGS Flags);

static const FLT_OPERATION_REGISTRATION AgentshOperations[] = {
    { IRP_MJ_CREATE, 0, AgentshPreCreate, NULL, NULL },
    /* paging writes are skipped: they run at APC_LEVEL or above and carry no new intent (the
     * handle's write access was decided at create) */
    { IRP_MJ_WRITE, FLTFL_OPERATION_REGISTRATION_SKIP_PAGING_IO, AgentshPreWrite, NULL, NULL },
    { IRP_MJ_SET_INFORMATION, FLTFL_OPERATION_REGISTRATION_SKIP_PAGING_IO, AgentshPreSetInformation, NULL, NULL },
    { IRP_MJ_OPERATION_END, 0, NULL, NULL, NULL }
};

static const FLT_REGISTRATION AgentshRegistration = {
    sizeof(FLT_REGISTRATION),
    FLT_REGISTRATION_VERSION,
    0,
    NULL,
    AgentshOperations,
    AgentshUnload,
    AgentshInstanceSetup,
    AgentshInstanceQueryTeardown,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
};

static void AgentshStop(void)
{
    AGENTSH_GLOBALS *g = &AgentshGlobals;
    if (g->RegistryRegistered) {
        (void)CmUnRegisterCallback(g->RegistryCookie);
        g->RegistryRegistered = FALSE;
    }
    if (g->ProcessNotifyRegistered) {
        (void)PsSetCreateProcessNotifyRoutineEx(AgentshProcessNotify, TRUE);
        g->ProcessNotifyRegistered = FALSE;
    }
    AgentshNotifyThreadStop();
    AgentshPortClose();               /* server port: no new connections */
    if (g->Filter != NULL) {
        FltUnregisterFilter(g->Filter); /* waits for callbacks; closes the client port (disconnect) */
        g->Filter = NULL;
    }
    if (g->CoreInitialized) {
        AgentshCoreDestroy(&g->Core);
        g->CoreInitialized = FALSE;
    }
}

NTSTATUS DriverEntry(_In_ PDRIVER_OBJECT DriverObject, _In_ PUNICODE_STRING RegistryPath)
{
    AGENTSH_GLOBALS *g = &AgentshGlobals;
    UNICODE_STRING altitude;
    NTSTATUS status;

    UNREFERENCED_PARAMETER(RegistryPath);
    RtlZeroMemory(g, sizeof(*g));
    g->DriverObject = DriverObject;
    ExInitializeRundownProtection(&g->ClientRundown);

    status = AgentshCoreInit(&g->Core, AgentshKernelSend, NULL, NULL, NULL);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    g->CoreInitialized = TRUE;

    status = FltRegisterFilter(DriverObject, &AgentshRegistration, &g->Filter);
    if (!NT_SUCCESS(status)) {
        g->Filter = NULL;
        goto fail;
    }
    status = AgentshPortCreate();
    if (!NT_SUCCESS(status)) {
        goto fail;
    }
    /* requires /INTEGRITYCHECK (agentsh.vcxproj) */
    status = PsSetCreateProcessNotifyRoutineEx(AgentshProcessNotify, FALSE);
    if (!NT_SUCCESS(status)) {
        goto fail;
    }
    g->ProcessNotifyRegistered = TRUE;
    RtlInitUnicodeString(&altitude, AGENTSH_FILTER_ALTITUDE);
    status = CmRegisterCallbackEx(AgentshRegistryCallback, &altitude, DriverObject, NULL, &g->RegistryCookie, NULL);
    if (!NT_SUCCESS(status)) {
        goto fail;
    }
    g->RegistryRegistered = TRUE;
    status = AgentshNotifyThreadStart();
    if (!NT_SUCCESS(status)) {
        goto fail;
    }
    status = FltStartFiltering(g->Filter);
    if (!NT_SUCCESS(status)) {
        goto fail;
    }
    return STATUS_SUCCESS;

fail:
    AgentshStop();
    return status;
}

static NTSTATUS AgentshUnload(_In_ FLT_FILTER_UNLOAD_FLAGS Flags)
{
    UNREFERENCED_PARAMETER(Flags);
    PAGED_CODE();
    AgentshStop();
    return STATUS_SUCCESS;
}

static NTSTATUS AgentshInstanceSetup(_In_ PCFLT_RELATED_OBJECTS FltObjects, _In_ FLT_INSTANCE_SETUP_FLAGS Flags,
    _In_ DEVICE_TYPE VolumeDeviceType, _In_ FLT_FILESYSTEM_TYPE VolumeFilesystemType)
{
    UNREFERENCED_PARAMETER(FltObjects);
    UNREFERENCED_PARAMETER(Flags);
    PAGED_CODE();
    /* local disks and network redirectors (\Device\Mup); not raw volumes or CD-ROM file systems */
    if (VolumeFilesystemType == FLT_FSTYPE_RAW) {
        return STATUS_FLT_DO_NOT_ATTACH;
    }
    if (VolumeDeviceType != FILE_DEVICE_DISK_FILE_SYSTEM && VolumeDeviceType != FILE_DEVICE_NETWORK_FILE_SYSTEM) {
        return STATUS_FLT_DO_NOT_ATTACH;
    }
    return STATUS_SUCCESS;
}

static NTSTATUS AgentshInstanceQueryTeardown(_In_ PCFLT_RELATED_OBJECTS FltObjects,
    _In_ FLT_INSTANCE_QUERY_TEARDOWN_FLAGS Flags)
{
    UNREFERENCED_PARAMETER(FltObjects);
    UNREFERENCED_PARAMETER(Flags);
    return STATUS_SUCCESS;
}
