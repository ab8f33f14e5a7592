"""lean"""
